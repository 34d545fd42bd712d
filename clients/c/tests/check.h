/*
 * The C tests' one check: counts passes and failures, prints each failure
 * with its place. Each test program includes it once and ends by printing
 * "N passed, M failed".
 */
#ifndef ORGD_TESTS_CHECK_H
#define ORGD_TESTS_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(condition, ...)                                   \
    do {                                                        \
        if (condition) {                                        \
            passed++;                                           \
        } else {                                                \
            failed++;                                           \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
        }                                                       \
    } while (0)

#endif
