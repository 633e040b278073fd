-- Reads page_texts (every page of a fetch in parts) and adds to the table ids each task's id and what
-- settles duplicates (its revision, pass, page and position); a task without an id is left out.
-- Constants: ids_structure (only those fields, as text: the parse makes nothing else of a task) and
-- unparsed (the position of the one row a page that does not parse gives; it has no id).
INSERT INTO ids
SELECT * FROM (
    SELECT u.page_offset, u.pass_no, u.pos,
        api_integer(u.t.id) AS task_id,
        api_integer(coalesce(u.t."StatusRevision", u.t.status_revision)) AS status_revision
    FROM (
        SELECT * EXCLUDE (json, page),
            unnest(CASE WHEN page IS NULL THEN [NULL] ELSE page.tasks END) AS t,
            unnest(CASE WHEN page IS NULL THEN [${unparsed}] ELSE range(len(page.tasks)) END)::INTEGER AS pos
        FROM (SELECT *, TRY(json_transform(json, '${ids_structure}')) AS page FROM page_texts)
    ) u
)
WHERE task_id IS NOT NULL
