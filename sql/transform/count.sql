-- Reads typed_tasks and produces the batch's count of tasks with an id, and of distinct ids: only when they
-- differ is the de-duplication, a sort, paid for (kept_rn.sql).
SELECT count(*), count(DISTINCT (instance_id, execution_id, task_id)) FROM typed_tasks WHERE task_id IS NOT NULL
