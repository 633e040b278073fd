-- Reads nothing; produces the empty table ids, which ids.sql fills with the task ids of a fetch in parts.
CREATE OR REPLACE TEMP TABLE ids (
    page_offset BIGINT, pass_no INTEGER, pos INTEGER, task_id BIGINT, status_revision BIGINT
)
