-- Reads one value, $v, and produces it cast as a task's time is (api_time), in microseconds since the
-- epoch: fetching a TIMESTAMPTZ value itself would import pandas (decision 0013).
SELECT epoch_us(api_time($v))
