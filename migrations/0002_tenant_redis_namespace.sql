-- depends: 0001_initial
-- Redis keys are namespaced by a random id stored with the tenant: a Redis that outlives its database (a
-- restore, a new test database, a second installation sharing one Redis) can never answer for deliveries
-- that this database does not hold.
ALTER TABLE tenants ADD COLUMN redis_namespace uuid NOT NULL DEFAULT gen_random_uuid();
