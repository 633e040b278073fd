-- Reads kept_tasks and produces the task ids a part of a fetch loads, checked against its earlier parts'.
SELECT task_id FROM kept_tasks
