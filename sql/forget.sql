-- the right to be forgotten: lead_enrich.forget(email, domain, lead_ids)
\set SHOW_CONTEXT never
-- outcomes of our own, apart from the other tests' leads
INSERT INTO lead_enrich.lead_state (lead_id, status, email, domain, company, credits) VALUES
	(900001, 'enriched', 'Jane Roe <Jane.Roe@acme.example>', 'acme.example', '{"name": "Acme"}', 1),
	(900002, 'enriched', 'bob@acme.example', 'acme.example', '{"name": "Acme"}', 0),
	(900003, 'enriched', 'carl@sub.acme.example', 'sub.acme.example', '{"name": "Acme"}', 0),
	(900004, 'not_found', 'dora@other.example', 'other.example', NULL, 0),
	(900005, 'mined', 'info@mined.example', 'mined.example',
	 '{"name": "Mined", "people_data": [{"full_name": "Jane Roe", "email": "jane.roe@acme.example"},
										{"full_name": "Eve", "email": "eve@mined.example"}]}', 1),
	(900006, 'pending', 'fay@batch.example', NULL, NULL, 0),
	(900007, 'pending', 'gus@batch2.example', NULL, NULL, 0);
INSERT INTO lead_enrich.batch (id, request_id, lead_ids, domains) VALUES
	(900001, 'forget-test-1', '{900006,900007}', '{batch.example,batch2.example}');
UPDATE lead_enrich.lead_state SET batch_id = 900001 WHERE lead_id IN (900006, 900007);

-- bad input changes nothing
SELECT lead_enrich.forget();
SELECT lead_enrich.forget(email => 'not an address');
SELECT lead_enrich.forget(domain => 'no spaces please.com x');
SELECT count(*) AS ours FROM lead_enrich.lead_state WHERE lead_id BETWEEN 900001 AND 900007;

-- a person: the outcome read from that address (in any form) and the
-- contact of a mined company
SELECT lead_enrich.forget(email => 'jane.roe@ACME.example');
SELECT lead_id FROM lead_enrich.lead_state WHERE lead_id BETWEEN 900001 AND 900007 ORDER BY 1;
SELECT jsonb_path_query_array(company, '$.people_data[*].full_name') AS contacts_left
FROM lead_enrich.lead_state WHERE lead_id = 900005;

-- a company: its domain and sub-domains
SELECT lead_enrich.forget(domain => 'acme.example');
SELECT lead_id FROM lead_enrich.lead_state WHERE lead_id BETWEEN 900001 AND 900007 ORDER BY 1;

-- leads by id, one of them in an unsettled batch: the batch keeps the other
SELECT lead_enrich.forget(lead_ids => ARRAY[900004, 900006]);
SELECT id, lead_ids, domains FROM lead_enrich.batch WHERE id = 900001;
SELECT lead_enrich.forget(lead_ids => ARRAY[900007]);
SELECT count(*) AS batch_left FROM lead_enrich.batch WHERE id = 900001;

-- forgetting again finds nothing
SELECT lead_enrich.forget(email => 'jane.roe@acme.example', domain => 'acme.example');

-- not for lead_enrich_user
CREATE ROLE regress_le_forget IN ROLE lead_enrich_user;
SET ROLE regress_le_forget;
SELECT lead_enrich.forget(email => 'x@y.example');
RESET ROLE;
DROP ROLE regress_le_forget;
DELETE FROM lead_enrich.lead_state WHERE lead_id BETWEEN 900001 AND 900007;
