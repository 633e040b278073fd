-- Reads typed_tasks and produces the view kept_tasks: the batch's rows that load (every task with an id),
-- when no task id was listed twice.
CREATE OR REPLACE TEMP VIEW kept_tasks AS SELECT * FROM typed_tasks WHERE task_id IS NOT NULL
