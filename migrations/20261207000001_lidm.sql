-- The order number the bank knows the order by (LID-M), when the shop's
-- requests give one in the optional column `lidm`; NULL: the shop's own
-- order number is the bank's too. `order_no` stays the shop's key, which the
-- write-backs receive.
ALTER TABLE refunds ADD COLUMN lidm text;
