-- Reads ids and produces the fetch's count of task ids listed, and of distinct ones.
SELECT count(*), count(DISTINCT task_id) FROM ids
