/* lead_enrich 1.1 -> 1.2: trust boundary, Odoo fidelity, platform */

\echo Use "ALTER EXTENSION lead_enrich UPDATE TO '1.2'" to load this file. \quit

/*
 * Each change below has a section of its own; the install script
 * (sql/install/) holds the same definitions, and test/t_upgrade.sh checks
 * that an upgraded catalog equals a fresh one.
 */
