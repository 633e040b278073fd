-- Reads typed_tasks and losers and produces the view kept_tasks for a part of a settled fetch: its
-- duplicated task ids were settled across the whole fetch (losers.sql), so a part only drops the losers.
CREATE OR REPLACE TEMP VIEW kept_tasks AS
SELECT t.* FROM typed_tasks t ANTI JOIN losers l USING (page_offset, pass_no, pos) WHERE t.task_id IS NOT NULL
