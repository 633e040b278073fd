-- Reads kept_tasks and produces the table resource_errors: the one place where embedded resources are
-- judged, a row for each side that fails, with its reason. Only the few resources that did not parse or
-- were suspicious (*_look, see read.sql) are looked at again, in their text; a side with no row here is
-- good and its parsed resource is used as it is. What the parse left NULL is told by flags: unparsed from
-- the read, no_name from its repository column, the others worked out by Arrow from the artifact lists
-- (pipeline.transform.explode.resource_facts), so DuckDB reads back no parsed resource here.
CREATE OR REPLACE TEMP TABLE resource_errors AS
WITH sides AS (
    SELECT rn, instance_id, execution_id, task_id, run_id, page_offset, pos, execution_month,
           'src' AS side, src_txt AS txt, src_artifacts AS artifacts,
           src_unparsed AS unparsed, src_no_name AS no_name, src_no_artifacts AS no_artifacts,
           src_bad_artifact AS bad_artifact, src_null_tags AS null_tags, src_null_tag AS null_tag
    FROM kept_tasks WHERE src_look
    UNION ALL
    SELECT rn, instance_id, execution_id, task_id, run_id, page_offset, pos, execution_month,
           'dst' AS side, dst_txt AS txt, dst_artifacts AS artifacts,
           dst_unparsed AS unparsed, dst_no_name AS no_name, dst_no_artifacts AS no_artifacts,
           dst_bad_artifact AS bad_artifact, dst_null_tags AS null_tags, dst_null_tag AS null_tag
    FROM kept_tasks WHERE dst_look
), typed AS (
    SELECT *,
        -- the text is parsed again only to name what is missing or of the wrong type
        CASE WHEN NOT unparsed AND (no_name OR no_artifacts)
             THEN json_type(
                 txt, ['$.metadata', '$.metadata.repository', '$.metadata.repository.name', '$.metadata.artifacts']
             ) END AS ty,
        CASE WHEN bad_artifact THEN json_type(txt, '$.metadata.artifacts[*]') END AS ta,
        CASE WHEN null_tags THEN json_type(txt, '$.metadata.artifacts[*].tags') END AS tt
    FROM sides
)
SELECT rn, instance_id, execution_id, task_id, run_id, page_offset, pos, execution_month, side, txt AS raw, error
FROM (
SELECT *,
    CASE
        WHEN unparsed AND txt IS NULL THEN 'missing or null'
        WHEN unparsed THEN CASE WHEN trim(txt) = '' THEN 'empty string' ELSE 'invalid JSON' END
        -- the others are suspicious. The parse gives NULLs for a part that is missing and for one of another
        -- type (a string where an object should be parses as an object of NULLs): the text tells which.
        WHEN ty IS NOT NULL AND json_type(txt) <> 'OBJECT' THEN 'not a JSON object but ' || lower(json_type(txt))
        WHEN ty IS NOT NULL AND ty[1] IS NULL THEN 'missing key metadata'
        WHEN ty IS NOT NULL AND ty[1] <> 'OBJECT' THEN 'metadata is ' || lower(ty[1]) || ', expected an object'
        WHEN ty IS NOT NULL AND ty[2] IS NULL THEN 'missing key metadata.repository'
        WHEN ty IS NOT NULL AND ty[2] <> 'OBJECT'
            THEN 'metadata.repository is ' || lower(ty[2]) || ', expected an object'
        WHEN ty IS NOT NULL AND ty[3] IS NULL THEN 'missing key metadata.repository.name'
        WHEN no_name THEN 'metadata.repository.name is ' || lower(ty[3]) || ', expected a string'
        WHEN ty IS NOT NULL AND ty[4] IS NULL THEN 'missing key metadata.artifacts'
        WHEN ty IS NOT NULL AND ty[4] = 'NULL' THEN NULL
        WHEN no_artifacts THEN 'metadata.artifacts is ' || lower(ty[4]) || ', expected an array'
        WHEN len(list_filter(ta, lambda x: x <> 'OBJECT')) > 0 THEN 'an artifact is not an object'
        WHEN ta IS NOT NULL THEN 'an artifact has no digest string'
        WHEN len(tt) < artifacts THEN 'an artifact has no tags key'
        WHEN len(list_filter(tt, lambda x: x NOT IN ('ARRAY', 'NULL'))) > 0
            THEN 'the tags of an artifact are not an array'
        WHEN null_tag THEN 'a tag is not a string'
    END AS error
FROM typed
)
WHERE error IS NOT NULL
