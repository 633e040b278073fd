-- Reads kept_tasks and repeated and produces the table unrepeated_rn: the rows of a part that load, less
-- those whose id an earlier part of the fetch loaded.
CREATE OR REPLACE TEMP TABLE unrepeated_rn AS SELECT rn FROM kept_tasks ANTI JOIN repeated USING (task_id)
