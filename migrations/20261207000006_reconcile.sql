-- Reconciliation with the bank (`refundd reconcile`): each run asks the bank
-- again about every order refundd worked in its window and classifies it
-- (matched, expected, mismatch). A run is kept with its counts and its whole
-- report, so the latest can be printed without asking the bank again; each
-- mismatch is kept until a person resolves it (`refundd reconcile resolve`),
-- so one found again the next day is not new, and its event goes out once.

CREATE TABLE reconcile_runs (
    id              bigserial PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz NOT NULL DEFAULT now(),
    window_from     timestamptz NOT NULL,
    window_to       timestamptz NOT NULL,
    matched         integer NOT NULL CHECK (matched >= 0),
    expected        integer NOT NULL CHECK (expected >= 0),
    mismatch        integer NOT NULL CHECK (mismatch >= 0),
    -- orders the bank did not answer for: asked again by the next run
    unchecked       integer NOT NULL CHECK (unchecked >= 0),
    -- the money refundd refunded in the window, per currency: {"901": 12345}
    refunded_total  jsonb NOT NULL,
    -- the report's rows as `refundd reconcile --format json` prints them
    report          jsonb NOT NULL
);

CREATE TABLE reconcile_mismatches (
    id              bigserial PRIMARY KEY,
    order_no        text NOT NULL,
    merchant        text,
    reason          text NOT NULL,
    first_run       bigint NOT NULL REFERENCES reconcile_runs (id),
    last_run        bigint NOT NULL REFERENCES reconcile_runs (id),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    -- closed by a person (the operating-system user and why), or by a later
    -- run that found the order matched again
    resolved_at     timestamptz,
    resolved_by     text,
    resolved_by_run bigint REFERENCES reconcile_runs (id),
    resolution      text,
    CHECK ((resolved_at IS NULL) = (resolved_by IS NULL AND resolved_by_run IS NULL))
);
-- One open mismatch per order: found again, it is the same one.
CREATE UNIQUE INDEX reconcile_mismatches_open ON reconcile_mismatches (order_no)
    WHERE resolved_at IS NULL;
CREATE INDEX reconcile_mismatches_order ON reconcile_mismatches (order_no, id);

-- A mismatch is told like every event.
ALTER TABLE outbox DROP CONSTRAINT outbox_type_is_an_event_type;
ALTER TABLE outbox ADD CONSTRAINT outbox_type_is_an_event_type
    CHECK (type IN ('refund.succeeded', 'refund.settled', 'refund.failed',
                    'refund.withdrawn', 'refund.needs_attention', 'refund.cancelled',
                    'refund.mismatch'));
