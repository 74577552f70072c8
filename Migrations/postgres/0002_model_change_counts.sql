-- Every write to a model takes a new number from this sequence into the model's row, in the write's
-- transaction: a replica keeps its answers about a model while the number it reads there stays the same, so
-- a write through any replica is seen by all of them at once.
CREATE SEQUENCE model_changes;
ALTER TABLE models ADD COLUMN change_count BIGINT NOT NULL DEFAULT nextval('model_changes');
