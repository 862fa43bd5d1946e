-- Where the bank filed each refund it accepted: its retrieval reference
-- (RetrRef) and its place in the refund batch (BatchID, BatchSeq), kept on
-- the accepted refund's outcome event as the bank sent them. A refund
-- reversal names the refund it cancels by these; an order's later refunds
-- each have their own. NULL on every other event, and on the events written
-- before this migration (the bank's answers were not kept then).
ALTER TABLE refund_events
    ADD COLUMN retr_ref text,
    ADD COLUMN batch_id text,
    ADD COLUMN batch_seq text;
