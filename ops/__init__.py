"""Operations: start/stop of the embedded stack, DDL, deployment files.

``ops.processes`` supervises the service processes (noida-db, milvus-lite
server) so that a later command, in another process, can find and stop them;
``ops.stack`` brings the stack up, creates every declared topic with its
partition count, and tells the rest of the platform where the services are.
The production-like stack (Apache Kafka, Schema Registry, ClickHouse, Milvus)
is described in ``docker-compose.kafka.yml`` at the repository root.
"""
