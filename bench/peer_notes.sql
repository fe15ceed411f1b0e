-- The DIY peer with Odoo's chatter notes, for bench/run.sh's like-for-like
-- figure.  The peer (../shared/peers/diy_http_enrich.sql) writes no note;
-- lead_enrich's automatic mode posts one a lead in Odoo's mail_message, as
-- Odoo does.  A DBA who wanted the notes too would add what this adds: a
-- statement trigger on the peer's table that posts, for each lead its
-- diy_enrich() marks done, a note in the lead's chatter (model crm.lead,
-- message type notification, subtype mail.mt_note, OdooBot as author and
-- base.user_root as the writing user, dates in UTC): a card of what was
-- filled for a lead it enriched, "no company data found" for the others.
-- diy_enrich() is left as it is.  The card holds what the peer's table
-- keeps, so it is shorter than lead_enrich's (which shows the provider's
-- whole company): the peer's notes cost it less than lead_enrich's cost
-- lead_enrich.  The trigger is created disabled; run.sh enables it for the
-- peer's runs with notes only.
CREATE OR REPLACE FUNCTION diy_post_notes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO odoo.mail_message (body, model, res_id, message_type, subtype_id, is_internal,
		author_id, date, message_id, create_uid, create_date, write_uid, write_date)
	SELECT CASE WHEN n.partner_name IS NOT NULL THEN
			format('<div class="o_diy_card"><p><em>Lead enriched based on email address</em></p>'
				   '<h4 style="margin:0">%s</h4><table>'
				   '<tr><th style="text-align:left">Address</th><td>%s, %s %s, %s</td></tr>'
				   '<tr><th style="text-align:left">Phone</th><td>%s</td></tr>'
				   '<tr><th style="text-align:left">Company id</th><td>%s</td></tr></table></div>',
				   n.partner_name, n.street, n.zip, n.city, n.country_code, n.phone, n.reveal_id)
		ELSE '<p>No company data found based on the email address or email address is one of an '
			 'email provider. No credit was consumed.</p>' END,
		'crm.lead', n.id, 'notification', k.mt_note, false, k.partner_root,
		now() AT TIME ZONE 'UTC', '<' || clock_timestamp() || '.' || n.id || '.diy@localhost>',
		k.user_root, now() AT TIME ZONE 'UTC', k.user_root, now() AT TIME ZONE 'UTC'
	FROM diy_new n
	JOIN diy_old o ON o.id = n.id
	CROSS JOIN (SELECT max(res_id) FILTER (WHERE name = 'mt_note') AS mt_note,
					   max(res_id) FILTER (WHERE name = 'partner_root') AS partner_root,
					   max(res_id) FILTER (WHERE name = 'user_root') AS user_root
				FROM odoo.ir_model_data
				WHERE (module, name) IN (('mail', 'mt_note'), ('base', 'partner_root'), ('base', 'user_root'))) k
	WHERE n.iap_enrich_done AND o.iap_enrich_done IS NOT TRUE;
	RETURN NULL;
END $$;

CREATE TRIGGER diy_notes AFTER UPDATE ON leads
	REFERENCING OLD TABLE AS diy_old NEW TABLE AS diy_new
	FOR EACH STATEMENT EXECUTE FUNCTION diy_post_notes();
ALTER TABLE leads DISABLE TRIGGER diy_notes;
