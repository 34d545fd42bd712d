"""The descriptor pool of the schemas orgd restates from others: ttrpc,
google.rpc and grpc.health.v1 (every generated module outside ``_gen/orgd``
imports this module in place of ``google.protobuf.descriptor_pool``;
scripts/generate-protos rewrites that import).

In protobuf's default pool those messages would clash with the same ones that
googleapis-common-protos (``google.rpc``, which grpcio-status uses) and
grpcio-health-checking (``grpc.health.v1``) register from files of their own,
whichever is imported second failing (as they still do under protobuf's
pure-Python implementation, which records every message in the default pool
too; upb, the default, keeps pools apart). orgd's own ``orgd.v1`` stays in the
default pool, so that its fields take the well-known types' usual classes.
"""
from google.protobuf import any_pb2, descriptor_pool

_POOL = descriptor_pool.DescriptorPool()
# google.rpc.Status carries its details as Any.
_POOL.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)


def Default() -> descriptor_pool.DescriptorPool:  # noqa: N802 (the name the generated code calls)
    """The pool, under the name the generated code calls on ``descriptor_pool``."""
    return _POOL
