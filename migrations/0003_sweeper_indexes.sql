-- depends: 0002_tenant_redis_namespace
-- The sweeper reads deliveries stored but not yet applied, oldest first, in two index-ordered scans.
CREATE INDEX deliveries_received ON deliveries (received_at) WHERE status = 'received';
CREATE INDEX deliveries_dispatched ON deliveries (dispatched_at) WHERE status = 'dispatched';
