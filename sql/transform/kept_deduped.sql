-- Reads typed_tasks and kept_rn and produces the view kept_tasks: the batch's rows that load, when some
-- task ids were listed twice.
CREATE OR REPLACE TEMP VIEW kept_tasks AS SELECT * FROM typed_tasks SEMI JOIN kept_rn USING (rn)
