-- Lease numbers that never repeat, even across a Postgres crash.
--
-- Claims commit without waiting for their WAL flush (synchronous_commit =
-- off on the claimers' connections), so a crash can forget a claim whose
-- reply a worker already acted on. With `lease + 1`, the next claim of that
-- task or proxy was handed the forgotten number again, and when the same
-- worker made that claim, both of its holders passed every fence.
--
-- A claim now takes the clock's time in microseconds as its lease, or one
-- more than the row's last lease if that is later (so leases still only
-- grow). A restart takes far longer than a microsecond, so every claim after
-- it gets a number above any handed out before it. Bumps that hand a claim
-- back (`lease + 1`) issue numbers no one holds and stay as they are.
CREATE FUNCTION next_lease(last bigint) RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$ SELECT greatest(last + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) $$;
