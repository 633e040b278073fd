-- Reads typed_tasks and unrepeated_rn and produces the view kept_tasks again, without the repeated ids.
CREATE OR REPLACE TEMP VIEW kept_tasks AS SELECT * FROM typed_tasks SEMI JOIN unrepeated_rn USING (rn)
