-- Reads typed_tasks and batch_files and produces the rare rows Python explains with their raw text
-- (pipeline.transform.judge.odd_pages_and_tasks): tasks without an id (or not objects at all), pages that
-- did not parse (their one row, whatever rows they claim), and pages that gave fewer tasks than were landed
-- (their tasks not a list; position NULL).
SELECT instance_id, execution_id, page_offset, pass_no, pos FROM typed_tasks WHERE id_raw IS NULL
UNION ALL
SELECT f.instance_id, f.execution_id, f.page_offset, f.pass_no, NULL
FROM batch_files f
LEFT JOIN (
    SELECT instance_id, execution_id, run_id, page_offset, pass_no, count(*) AS n
    FROM typed_tasks GROUP BY ALL
) t USING (instance_id, execution_id, run_id, page_offset, pass_no)
WHERE coalesce(t.n, 0) < f.rows
