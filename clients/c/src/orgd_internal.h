/* What the library's own files share and callers do not see. */
#ifndef ORGD_INTERNAL_H
#define ORGD_INTERNAL_H

#include "orgd_client.h"

/* Stops waiting for stream_id's answer (after a timeout): one that still
   comes is skipped, not kept. */
void orgd_forget_call(orgd_conn *conn, uint32_t stream_id);

#endif
