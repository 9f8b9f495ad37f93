"""`payrisk chaos`: a fault suite run against a live stack, with the invariants checked after every fault."""
