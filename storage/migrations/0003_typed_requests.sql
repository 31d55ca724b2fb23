-- 0003_typed_requests: stored requests become {"endpoint", "request"}, read back as the core's
-- typed request models (discriminated by "endpoint"). The old "transparent" flag repeated what
-- the endpoint says ("generate-transparent"), so it is dropped.

UPDATE jobs
SET request_json = json_remove(request_json, '$.transparent')
WHERE json_type(request_json, '$.transparent') IS NOT NULL;
