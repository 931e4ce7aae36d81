"""The load generator: load shapes and schedules (pure), request data, the async generator, its
worker processes and its lean gRPC and HTTP clients."""
