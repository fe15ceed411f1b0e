-- The webmail rule: a domain is generic when it, or a parent domain of it that
-- is not a public suffix, is listed in lead_enrich.webmail_domain.  The list is
-- a table a DBA changes; pg_dump keeps the DBA's rows.
\set SHOW_CONTEXT never

-- companies under a public suffix are not webmail, even when the suffix is listed;
-- webmail and its sub-domains are
SELECT d AS domain, lead_enrich.webmail_match(d) AS listed_as
FROM unnest(ARRAY['bna.com.ar', 'redcross.org.ua', 'apteka.net.ua', 'artacademy.spb.ru', 'acme.za.com',
				  'gmail.com', 'corp.mail.ru', 'mail.yahoo.co.uk', 'yahoo.com.ar', 'x1x.spb.ru', 'a.x1x.spb.ru',
				  'GMail.COM.', 'gmail', 'harvard.edu', 'com.ar']) d;
-- the shipped list holds no public suffix and none of the organisations taken out
SELECT count(*) AS shipped, count(*) FILTER (WHERE NOT shipped) AS added FROM lead_enrich.webmail_domain;
SELECT domain FROM lead_enrich.webmail_domain
WHERE domain IN ('com.ar', 'org.ua', 'net.ua', 'spb.ru', 'za.com', 'berlin.de', 'bt.com', 'unican.es');

-- a DBA adds a mail service and a public suffix, and removes a shipped entry
INSERT INTO lead_enrich.webmail_domain (domain) VALUES ('mail.example-isp.net'), ('com.br');
DELETE FROM lead_enrich.webmail_domain WHERE domain = 'free.fr';
SELECT d AS domain, lead_enrich.webmail_match(d) AS listed_as
FROM unnest(ARRAY['mail.example-isp.net', 'pop.mail.example-isp.net', 'example-isp.net',
				  'petrobras.com.br', 'com.br', 'free.fr', 'sub.free.fr']) d;
-- names are stored as enrichment compares them: lower case, no outer dots
INSERT INTO lead_enrich.webmail_domain (domain) VALUES ('Mail.Example.ORG');
INSERT INTO lead_enrich.webmail_domain (domain) VALUES ('.example.org');
INSERT INTO lead_enrich.webmail_domain (domain) VALUES ('');
-- pg_dump dumps only the rows a DBA added: the shipped ones come with CREATE EXTENSION
SELECT c.relname, e.extcondition[array_position(e.extconfig, c.oid)] AS dump_condition
FROM pg_extension e JOIN pg_class c ON c.oid = ANY (e.extconfig)
WHERE e.extname = 'lead_enrich' AND c.relname = 'webmail_domain';
SELECT domain FROM lead_enrich.webmail_domain WHERE NOT shipped ORDER BY domain;

-- back to the shipped list
DELETE FROM lead_enrich.webmail_domain WHERE NOT shipped;
INSERT INTO lead_enrich.webmail_domain (domain, shipped) VALUES ('free.fr', true);
SELECT count(*) AS shipped FROM lead_enrich.webmail_domain;
-- the role may read the list and ask, not change it
SET ROLE lead_enrich_user;
SELECT lead_enrich.webmail_match('gmail.com') AS as_user;
INSERT INTO lead_enrich.webmail_domain (domain) VALUES ('x.example');
RESET ROLE;
