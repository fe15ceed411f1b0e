/* lead_enrich: CRM lead enrichment and lead mining over Odoo's IAP protocol */

\echo Use "CREATE EXTENSION lead_enrich" to load this file. \quit
