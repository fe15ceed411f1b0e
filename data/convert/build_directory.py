#!/usr/bin/env python3
"""Build data/directory.csv.gz, the reference provider's company directory.

Usage:
    python3 data/convert/build_directory.py [--shared ../shared/data] [--out data]

Python 3 standard library only (tested with Debian's /usr/bin/python3, 3.11).
Fully deterministic: same inputs -> byte-identical output (rows sorted by
domain, gzip header mtime = 0, no timestamps, no set/dict-order dependence).

Sources (see data/ATTRIBUTION.md for versions and licences):
  dotgov            dotgov/current-full.csv                     (CC0-1.0)
  universities      universities/world_universities_and_domains.json (MIT)
  remote-companies  remote-companies/companies/*.md             (ISC)
  nsi               nsi/nsi.json.gz + nsi/wikidata.json.gz      (BSD-3-Clause;
                    Wikidata-derived fields are CC0)
Debian reference data (present on every machine):
  /usr/share/iso-codes/json/iso_3166-1.json, iso_3166-2.json    (countries, subdivisions)
  /usr/share/zoneinfo/zone.tab, zone1970.tab                    (country -> IANA zones)
  /usr/share/publicsuffix/public_suffix_list.dat                (registrable domains)

Nothing is invented: a field is filled only when a source states it or it is
derived mechanically from a stated fact (registrable domain from a URL,
country name from an ISO code, time zone from country/state/city via the
tables below). Contacts (people) are not part of the directory.

Deduplication and merge
-----------------------
Every source record yields a primary registrable domain (eTLD+1 via the
Public Suffix List, ICANN + private sections, wildcards and exceptions) and
possibly further registrable domains (other official websites, other
university domains). Records with the same primary domain are merged into
one row. The other domains become `aliases` of that row, but only when no
row has that domain as its own primary domain, and only once (an alias
claimed by several rows goes to the first row in domain order).

Field precedence when several sources describe the same domain
(first source that has a value wins; field groups are taken as a whole
from one source so that they stay consistent):
  name                      dotgov > universities > nsi > remote-companies
  company_type              dotgov > universities > nsi > remote-companies
  sector/industry group     dotgov > universities > nsi > remote-companies
    (sector, industry_group, industry, sub_industry, industry_reveal_id)
  geography group           dotgov > universities > nsi > remote-companies
    (city, state_code, state_name, country_code, country_name)
  description               remote-companies (blurb) > nsi (Wikidata description)
  logo, twitter, facebook, linkedin           nsi (Wikidata) only
  tech, employees                             remote-companies only
  timezone                  computed after the merge from the geography group
Within NSI, several Wikidata items can point to the same registrable domain
(e.g. a brand and its national subsidiary). The item whose website is the
bare domain (or www.) wins, then brand over operator over network, then the
item whose label equals the domain's first label (Tesco for tesco.com rather
than Tesco Express), then brand over operator over network, then the item used
by most NSI entries, then the lower QID number.
"""
import argparse
import collections
import csv
import glob
import gzip
import io
import ipaddress
import json
import os
import re
import sys
import unicodedata
import urllib.parse
import uuid

COLUMNS = [
    'clearbit_id', 'domain', 'aliases', 'name', 'legal_name', 'description', 'logo',
    'company_type', 'founded_year', 'sector', 'industry_group', 'industry', 'sub_industry',
    'industry_reveal_id', 'employees', 'estimated_annual_revenue', 'phone_numbers', 'email',
    'timezone', 'tech', 'twitter', 'facebook', 'linkedin', 'crunchbase', 'location', 'city',
    'postal_code', 'state_code', 'state_name', 'country_code', 'country_name', 'source',
]
ARRAY_COLUMNS = {'aliases', 'phone_numbers', 'email', 'tech'}
SOURCE_ORDER = ['dotgov', 'universities', 'nsi', 'remote-companies']

ISO1 = '/usr/share/iso-codes/json/iso_3166-1.json'
ISO2 = '/usr/share/iso-codes/json/iso_3166-2.json'
ZONE_TAB = '/usr/share/zoneinfo/zone.tab'
ZONE1970_TAB = '/usr/share/zoneinfo/zone1970.tab'
PSL = '/usr/share/publicsuffix/public_suffix_list.dat'

# ---------------------------------------------------------------------------
# Odoo's 23 lead-mining industries (crm.iap.lead.industry, odoo-iap.md 4.8).
# Key = the FIRST reveal id of the industry, value = its name (trailing space of
# "Energy & Utilities " trimmed).
# ---------------------------------------------------------------------------
INDUSTRIES = {
    '30': 'Consumer Discretionary',
    '33': 'Consumer Staples',
    '69': 'Banks & Insurance',
    '86': 'Media',
    '114': 'Real Estate',
    '136': 'Transportation',
    '138': 'Energy & Utilities',
    '148': 'Materials',
    '149': 'Telecommunication Services',
    '150': 'Consumer Services',
    '152': 'Retailing',
    '153': 'Food, Beverage & Tobacco',
    '158': 'Diversified Financials & Financial Services',
    '160': 'Health Care Equipment & Services',
    '161': 'Pharmaceuticals, Biotechnology & Life Sciences',
    '162': 'Capital Goods',
    '163': 'Commercial & Professional Services',
    '165': 'Software & Services',
    '166': 'Technology Hardware & Equipment',
    '167': 'Construction Materials',
    '168': 'Independent Power and Renewable Electricity Producers',
    '238': 'Automobiles & Components',
    '239': 'Consumer Durables & Apparel',
}

# Classes: (industry reveal id or None, sector, industry_group (GICS-like) or None)
C_RETAIL = ('152', 'Retail', 'Retailing')
C_FOOD_SHOP = ('153', 'Food & Beverage', 'Food, Beverage & Tobacco')
C_STAPLES = ('33', 'Retail', 'Consumer Staples Distribution & Retail')
C_HOSPITALITY = ('150', 'Hospitality', 'Hotels, Restaurants & Leisure')
C_LEISURE = ('150', 'Leisure', 'Hotels, Restaurants & Leisure')
C_PERSONAL = ('150', 'Consumer Services', 'Diversified Consumer Services')
C_EDU = ('150', 'Education', 'Diversified Consumer Services')
C_BANK = ('69', 'Finance', 'Banks')
C_INSURANCE = ('69', 'Finance', 'Insurance')
C_FINANCE = ('158', 'Finance', 'Financial Services')
C_ENERGY = ('138', 'Energy', 'Energy')
C_UTILITY = ('138', 'Utilities', 'Utilities')
C_TRANSPORT = ('136', 'Transportation', 'Transportation')
C_HEALTH = ('160', 'Health Care', 'Health Care Equipment & Services')
C_PHARMACY = ('33', 'Health Care', 'Consumer Staples Distribution & Retail')
C_REAL_ESTATE = ('114', 'Real Estate', 'Real Estate Management & Development')
C_PROF = ('163', 'Professional Services', 'Commercial & Professional Services')
C_ENV = ('163', 'Environmental Services', 'Commercial & Professional Services')
C_SOFTWARE = ('165', 'Technology', 'Software & Services')
C_TELECOM = ('149', 'Telecommunications', 'Telecommunication Services')
C_MEDIA = ('86', 'Media', 'Media & Entertainment')
C_AUTO = ('238', 'Automotive', 'Automobiles & Components')
C_CAPITAL = ('162', 'Industrials', 'Capital Goods')
C_DURABLES = ('239', 'Consumer Goods', 'Consumer Durables & Apparel')
C_CONSTR_MAT = ('167', 'Materials', 'Construction Materials')
C_GOV = (None, 'Government', None)
C_PUBLIC_SERVICE = (None, 'Public Services', None)
C_NONPROFIT = (None, 'Nonprofit', None)

# NSI category "<key>/<value>" (tree prefix brands/, operators/, transit/ removed)
# -> class. sub_industry is the value, title-cased ("fast_food" -> "Fast Food").
NSI_CATEGORY = {
    # food and drink shops
    **{f'shop/{v}': C_FOOD_SHOP for v in (
        'alcohol', 'bakery', 'beverages', 'butcher', 'cheese', 'chocolate', 'coffee',
        'confectionery', 'dairy', 'deli', 'frozen_food', 'greengrocer', 'health_food',
        'nuts', 'pastry', 'seafood', 'spices', 'tea', 'wine', 'tobacco', 'e-cigarette',
        'bbq')},
    # supermarkets and general stores: retailing
    'shop/supermarket': C_RETAIL, 'shop/convenience': C_RETAIL,
    'shop/department_store': C_RETAIL, 'shop/variety_store': C_RETAIL,
    'shop/general': C_RETAIL, 'shop/wholesale': C_RETAIL, 'shop/kiosk': C_RETAIL,
    # drug stores, pharmacies, cosmetics: consumer staples
    'shop/chemist': C_STAPLES, 'shop/cosmetics': C_STAPLES, 'shop/perfumery': C_STAPLES,
    'amenity/pharmacy': C_PHARMACY,
    # vehicles
    **{f'shop/{v}': C_AUTO for v in ('car', 'car_parts', 'car_repair', 'tyres', 'motorcycle',
                                     'motorcycle_repair')},
    **{f'shop/{v}': C_CAPITAL for v in ('truck', 'truck_repair', 'tractor', 'tractor_repair',
                                        'plant_hire', 'tool_hire', 'trade', 'power_tools')},
    'shop/boat': C_DURABLES, 'shop/caravan': C_DURABLES,
    # telecom shops
    'shop/mobile_phone': C_TELECOM, 'shop/telecommunication': C_TELECOM,
    'office/telecommunication': C_TELECOM, 'telecom/exchange': C_TELECOM,
    'man_made/mast': C_TELECOM, 'man_made/tower': C_TELECOM,
    'man_made/street_cabinet': C_TELECOM, 'amenity/telephone': C_TELECOM,
    'internet_access/wlan': C_TELECOM,
    'telecom/data_center': C_SOFTWARE, 'office/it': C_SOFTWARE,
    # personal services
    **{f'shop/{v}': C_PERSONAL for v in (
        'hairdresser', 'beauty', 'massage', 'tattoo', 'dry_cleaning', 'laundry',
        'funeral_directors', 'travel_agency', 'ticket', 'copyshop', 'photo', 'repair',
        'shoe_repair', 'tailor', 'locksmith', 'pest_control', 'groundskeeping')},
    'shop/bookmaker': C_LEISURE, 'shop/lottery': C_LEISURE,
    'shop/storage_rental': C_REAL_ESTATE, 'shop/mall': C_REAL_ESTATE,
    'shop/money_lender': C_FINANCE, 'shop/pawnbroker': C_FINANCE, 'shop/gold_buyer': C_FINANCE,
    'shop/optician': C_HEALTH, 'shop/hearing_aids': C_HEALTH, 'shop/medical_supply': C_HEALTH,
    'shop/gas': C_ENERGY,
    # amenities
    'amenity/bank': C_BANK, 'amenity/atm': C_BANK, 'amenity/bureau_de_change': C_FINANCE,
    'amenity/money_transfer': C_FINANCE, 'amenity/payment_centre': C_FINANCE,
    'amenity/payment_terminal': C_FINANCE,
    'amenity/fuel': C_ENERGY, 'waterway/fuel': C_ENERGY,
    'amenity/charging_station': C_ENERGY, 'man_made/charge_point': C_ENERGY,
    **{f'amenity/{v}': C_HOSPITALITY for v in (
        'cafe', 'fast_food', 'restaurant', 'bar', 'pub', 'ice_cream', 'food_court')},
    **{f'amenity/{v}': C_LEISURE for v in (
        'casino', 'gambling', 'karaoke_box', 'nightclub', 'internet_cafe',
        'conference_centre', 'photo_booth')},
    'amenity/cinema': C_MEDIA,
    **{f'amenity/{v}': C_EDU for v in (
        'school', 'college', 'university', 'kindergarten', 'childcare', 'prep_school',
        'language_school', 'music_school', 'driving_school', 'training')},
    **{f'amenity/{v}': C_HEALTH for v in ('clinic', 'doctors', 'dentist', 'hospital')},
    'amenity/veterinary': C_PERSONAL, 'amenity/animal_boarding': C_PERSONAL,
    'amenity/animal_shelter': C_NONPROFIT, 'amenity/mortuary': C_PERSONAL,
    'amenity/car_wash': C_PERSONAL, 'amenity/vehicle_inspection': C_PROF,
    'amenity/weighbridge': C_PROF, 'amenity/vending_machine': C_RETAIL,
    'amenity/trolley_bay': C_RETAIL,
    **{f'amenity/{v}': C_TRANSPORT for v in (
        'car_rental', 'car_sharing', 'bicycle_rental', 'motorcycle_rental', 'parking',
        'post_office', 'post_box', 'post_depot', 'parcel_locker', 'ferry_terminal',
        'ticket_validator', 'bicycle_parking')},
    **{f'amenity/{v}': C_ENV for v in ('recycling', 'waste_disposal',
                                       'waste_transfer_station', 'waste_basket')},
    **{f'amenity/{v}': C_GOV for v in ('police', 'fire_station', 'courthouse', 'prison',
                                       'townhall')},
    **{f'amenity/{v}': C_PUBLIC_SERVICE for v in (
        'library', 'community_centre', 'social_centre', 'social_facility', 'public_bookcase',
        'drinking_water', 'toilets', 'shower', 'bbq', 'marketplace', 'food_sharing',
        'bicycle_repair_station')},
    # healthcare
    **{f'healthcare/{v}': C_HEALTH for v in (
        'alternative', 'audiologist', 'blood_donation', 'counselling', 'dialysis',
        'laboratory', 'physiotherapist', 'rehabilitation', 'sample_collection')},
    'emergency/ambulance_station': C_HEALTH,
    # leisure and tourism
    **{f'leisure/{v}': C_LEISURE for v in (
        'adult_gaming_centre', 'amusement_arcade', 'bowling_alley', 'dance', 'escape_game',
        'fitness_centre', 'high_ropes_course', 'indoor_play', 'miniature_golf', 'sauna',
        'sports_centre', 'trampoline_park', 'fitness_station')},
    **{f'tourism/{v}': C_HOSPITALITY for v in (
        'hotel', 'motel', 'hostel', 'caravan_site', 'camp_site')},
    'tourism/theme_park': C_LEISURE,
    # offices
    'office/insurance': C_INSURANCE, 'office/insurance_adjuster': C_INSURANCE,
    'office/financial': C_FINANCE, 'office/financial_advisor': C_FINANCE,
    'office/mortgage': C_FINANCE, 'office/bail_bond_agent': C_FINANCE,
    'office/estate_agent': C_REAL_ESTATE, 'office/coworking': C_REAL_ESTATE,
    'landuse/residential': C_REAL_ESTATE, 'landuse/retail': C_REAL_ESTATE,
    **{f'office/{v}': C_PROF for v in (
        'consulting', 'employment_agency', 'engineer', 'lawyer', 'security', 'tax_advisor',
        'visa')},
    'office/logistics': C_TRANSPORT, 'office/moving_company': C_TRANSPORT,
    'office/construction_company': C_CAPITAL,
    'office/energy_supplier': C_UTILITY, 'office/water_utility': C_UTILITY,
    'office/government': C_GOV, 'landuse/military': C_GOV,
    'office/association': C_NONPROFIT, 'office/union': C_NONPROFIT,
    'office/political_party': C_NONPROFIT, 'club/scout': C_NONPROFIT,
    'club/freemasonry': C_NONPROFIT, 'shop/charity': C_NONPROFIT,
    # crafts
    **{f'craft/{v}': C_CAPITAL for v in ('carpenter', 'electrician', 'plumber', 'painter',
                                         'glaziery', 'window_construction')},
    'craft/cleaning': C_PROF, 'craft/signmaker': C_PROF, 'craft/handicraft': C_PERSONAL,
    'craft/electronics_repair': C_PERSONAL,
    # advertising
    **{f'advertising/{v}': C_MEDIA for v in ('totem', 'billboard', 'column', 'poster_box',
                                             'screen')},
    # power, pipelines, water
    **{f'power/{v}': C_UTILITY for v in (
        'line', 'minor_line', 'pole', 'substation', 'tower', 'transformer', 'generator',
        'plant')},
    'power/catenary_mast': C_TRANSPORT, 'route/power': C_UTILITY,
    'man_made/pipeline': C_ENERGY, 'pipeline/substation': C_ENERGY,
    **{f'man_made/{v}': C_UTILITY for v in (
        'water_works', 'water_tower', 'wastewater_plant', 'pumping_station',
        'reservoir_covered')},
    'landuse/quarry': C_CONSTR_MAT, 'landuse/landfill': C_ENV,
    # transport
    **{f'route/{v}': C_TRANSPORT for v in (
        'railway', 'tracks', 'bus', 'train', 'tram', 'subway', 'light_rail', 'trolleybus',
        'ferry', 'aerialway', 'walking_bus')},
    **{f'public_transport/{v}': C_TRANSPORT for v in ('station_light_rail',
                                                      'station_subway')},
    **{f'railway/{v}': C_TRANSPORT for v in ('halt', 'station', 'tram_stop')},
    'highway/bus_stop': C_TRANSPORT, 'highway/services': C_TRANSPORT,
    'highway/toll_gantry': C_TRANSPORT, 'barrier/toll_booth': C_TRANSPORT,
    # parks, protected areas: run by public bodies
    **{f'{k}': C_GOV for k in ('boundary/national_park', 'boundary/protected_area',
                               'leisure/nature_reserve', 'leisure/park',
                               'boundary/aboriginal_lands')},
}
# Fallback by OSM key when the category is not listed above.
NSI_KEY_FALLBACK = {'shop': C_RETAIL, 'healthcare': C_HEALTH, 'tourism': C_HOSPITALITY,
                    'leisure': C_LEISURE}

# Categories that describe street furniture or side businesses of an organisation
# (Lidl's billboards, Shell's price totems, a bank's ATMs, a post's letter boxes).
# They are used for the industry only when the organisation has no other category.
SECONDARY_CATEGORIES = ('advertising/', 'amenity/vending_machine', 'amenity/parcel_locker',
                        'amenity/atm', 'amenity/post_box', 'amenity/telephone',
                        'amenity/payment_terminal', 'amenity/photo_booth',
                        'amenity/charging_station', 'man_made/charge_point',
                        'man_made/surveillance', 'man_made/street_cabinet',
                        'man_made/survey_point', 'man_made/monitoring_station',
                        'emergency/', 'highway/street_lamp', 'amenity/drinking_water',
                        'amenity/toilets', 'amenity/recycling', 'amenity/waste_basket',
                        'amenity/bicycle_parking', 'amenity/parking')


def cat_is_secondary(cat):
    return any(cat.startswith(p) for p in SECONDARY_CATEGORIES)


# Wikidata descriptions that say the operator is a place, i.e. the entity running
# the facilities is a local or regional government ("city in Bavaria, Germany",
# "commune in Bas-Rhin, France", "county of England", "capital of Norway").
_LEAD = r'(?:(?!(?:in|of|the|by|for|from|at|and|to|with)\s)[^\s,;()]+\s+){0,3}?'
PLACE_RE = re.compile(
    r'^' + _LEAD +
    r'(city|town|village|municipality|commune|comune|county seat|county|borough|capital|'
    r'province|prefecture|state|canton|country|island country|ward|township|parish|'
    r'governorate|oblast|raion|local government area|city-state|federal subject|'
    r'municipal corporation|local authority|government|administration|ministry)'
    r'(?:\s+(?:and|or)\s+[^\s,;]+)*\s+(?:in|of)\s', re.I)
# Operators whose Wikidata description says they are a university or school.
EDU_RE = re.compile(r'^' + _LEAD + r'(university|college|school|academy)\b(?!.*\bhospital\b)',
                    re.I)

# company_type from NSI operator:type (OSM). OSM "public" means a public-sector
# body (not a listed company as in Clearbit's "public"), so it maps to government.
OPERATOR_TYPE = {
    'government': 'government', 'public': 'government', 'military': 'government',
    'government;military': 'government', 'parastatal': 'government',
    'private': 'private', 'cooperative': 'private',
    'religious': 'nonprofit', 'ngo': 'nonprofit', 'charitable': 'nonprofit',
    'association': 'nonprofit', 'private_non_profit': 'nonprofit', 'community': 'nonprofit',
    'university': 'education',
}
# company_type from the NSI category when operator:type is absent.
CATEGORY_TYPE = {
    **{c: 'government' for c in (
        'amenity/police', 'amenity/fire_station', 'amenity/courthouse', 'amenity/prison',
        'amenity/townhall', 'office/government', 'landuse/military')},
    **{c: 'nonprofit' for c in (
        'office/political_party', 'office/union', 'office/association', 'club/scout',
        'club/freemasonry', 'shop/charity', 'amenity/animal_shelter')},
    **{c: 'education' for c in ('amenity/school', 'amenity/college', 'amenity/university',
                                'amenity/kindergarten')},
}
# Brands are businesses: a brand item is "private" unless its category says otherwise
# (schools/universities listed as brands are education, parties/unions nonprofit).

# dotgov "Domain type" -> (company_type, class, sub_industry). "- Election" variants
# use the base type; school districts are education.
DOTGOV_TYPE = {
    'Federal': ('government', C_GOV, 'Federal'),
    'Federal - Executive': ('government', C_GOV, 'Federal - Executive'),
    'Federal - Legislative': ('government', C_GOV, 'Federal - Legislative'),
    'Federal - Judicial': ('government', C_GOV, 'Federal - Judicial'),
    'State or territory': ('government', C_GOV, 'State or Territory'),
    'County': ('government', C_GOV, 'County'),
    'City': ('government', C_GOV, 'City'),
    'Special district': ('government', C_GOV, 'Special District'),
    'Interstate': ('government', C_GOV, 'Interstate'),
    'Tribal': ('government', C_GOV, 'Tribal'),
    'School district': ('education', C_EDU, 'School District'),
}

# Registrable domains that are generic hosts (social networks, blog/site hosts,
# link shorteners, encyclopedias). A website on such a host (a sub-domain or a
# page below it) is not an organisation's own site and is skipped; only the bare
# host itself (https://www.facebook.com/) counts, as the host company's site.
GENERIC_HOSTS = {
    'facebook.com', 'fb.com', 'fb.me', 'instagram.com', 'linkedin.com', 'twitter.com',
    'x.com', 't.co', 'youtube.com', 'youtu.be', 'tiktok.com', 'pinterest.com', 'vk.com',
    'ok.ru', 'weibo.com', 'wikipedia.org', 'wikimedia.org', 'wikidata.org', 'google.com',
    'goo.gl', 'g.page', 'business.site', 'blogspot.com', 'blogger.com', 'wordpress.com',
    'wixsite.com', 'wix.com', 'weebly.com', 'jimdo.com', 'jimdofree.com',
    'squarespace.com', 'tumblr.com', 'medium.com', 'github.io', 'github.com', 'gitlab.io',
    'linktr.ee', 'bit.ly', 'tinyurl.com', 'yelp.com', 'tripadvisor.com', 'foursquare.com',
    'openstreetmap.org', 'sites.google.com', 'webnode.page', 'webnode.com', 'canva.site',
    'carrd.co', 'notion.site', 'about.me', 'yolasite.com', 'strikingly.com',
    'mystrikingly.com', 'site123.me', 'godaddysites.com', 'business.google.com',
}

# ---------------------------------------------------------------------------
# Time zones for countries with several zones in zone.tab. Countries with a
# single zone get it directly. Only exact or "most areas" assignments as stated
# by tzdata's own zone.tab comments; otherwise null.
# ---------------------------------------------------------------------------
TZ_STATE = {
    'US': {
        **{s: 'America/New_York' for s in (
            'CT', 'DE', 'DC', 'GA', 'ME', 'MD', 'MA', 'NH', 'NJ', 'NY', 'NC', 'OH', 'PA', 'RI',
            'SC', 'VT', 'VA', 'WV')},
        **{s: 'America/Chicago' for s in ('AL', 'AR', 'IL', 'IA', 'LA', 'MN', 'MS', 'MO', 'OK',
                                          'WI', 'TX', 'KS')},
        **{s: 'America/Denver' for s in ('CO', 'MT', 'NM', 'UT', 'WY')},
        'AZ': 'America/Phoenix', 'CA': 'America/Los_Angeles', 'WA': 'America/Los_Angeles',
        'NV': 'America/Los_Angeles', 'OR': 'America/Los_Angeles', 'HI': 'Pacific/Honolulu',
        'AK': 'America/Anchorage', 'MI': 'America/Detroit', 'IN': 'America/Indiana/Indianapolis',
        'FL': 'America/New_York',
        'PR': 'America/Puerto_Rico', 'VI': 'America/St_Thomas', 'GU': 'Pacific/Guam',
        'AS': 'Pacific/Pago_Pago', 'MP': 'Pacific/Saipan',
        # split states without a default (TN, KY, NE, SD, ND, ID): city table only
    },
    'CA': {'AB': 'America/Edmonton', 'BC': 'America/Vancouver', 'MB': 'America/Winnipeg',
           'NB': 'America/Moncton', 'NL': 'America/St_Johns', 'NS': 'America/Halifax',
           'ON': 'America/Toronto', 'PE': 'America/Halifax', 'QC': 'America/Toronto',
           'SK': 'America/Regina', 'YT': 'America/Whitehorse', 'NT': 'America/Edmonton'},
    'AU': {'NSW': 'Australia/Sydney', 'ACT': 'Australia/Sydney', 'VIC': 'Australia/Melbourne',
           'QLD': 'Australia/Brisbane', 'SA': 'Australia/Adelaide', 'WA': 'Australia/Perth',
           'TAS': 'Australia/Hobart', 'NT': 'Australia/Darwin'},
    'BR': {**{s: 'America/Sao_Paulo' for s in ('GO', 'DF', 'MG', 'ES', 'RJ', 'SP', 'PR', 'SC',
                                               'RS')},
           **{s: 'America/Fortaleza' for s in ('MA', 'PI', 'CE', 'RN', 'PB')},
           'PE': 'America/Recife', 'TO': 'America/Araguaina', 'AL': 'America/Maceio',
           'SE': 'America/Maceio', 'BA': 'America/Bahia', 'MS': 'America/Campo_Grande',
           'MT': 'America/Cuiaba', 'RO': 'America/Porto_Velho', 'RR': 'America/Boa_Vista',
           'AC': 'America/Rio_Branco', 'AP': 'America/Belem'},
    'MX': {**{s: 'America/Mexico_City' for s in (
               'AGU', 'CHP', 'CMX', 'COL', 'GUA', 'GRO', 'HID', 'JAL', 'MEX', 'MIC', 'MOR',
               'OAX', 'PUE', 'QUE', 'SLP', 'TAB', 'TLA', 'VER', 'ZAC')},
           'ROO': 'America/Cancun', 'YUC': 'America/Merida', 'CAM': 'America/Merida',
           'DUR': 'America/Monterrey', 'COA': 'America/Monterrey', 'NLE': 'America/Monterrey',
           'TAM': 'America/Monterrey', 'CHH': 'America/Chihuahua', 'SIN': 'America/Mazatlan',
           'BCS': 'America/Mazatlan', 'NAY': 'America/Mazatlan', 'SON': 'America/Hermosillo',
           'BCN': 'America/Tijuana'},
    'AR': {'B': 'America/Argentina/Buenos_Aires', 'C': 'America/Argentina/Buenos_Aires',
           **{s: 'America/Argentina/Cordoba' for s in ('X', 'H', 'W', 'E', 'P', 'N', 'G', 'S')},
           **{s: 'America/Argentina/Salta' for s in ('A', 'L', 'Q', 'R')},
           'Y': 'America/Argentina/Jujuy', 'T': 'America/Argentina/Tucuman',
           'K': 'America/Argentina/Catamarca', 'U': 'America/Argentina/Catamarca',
           'F': 'America/Argentina/La_Rioja', 'J': 'America/Argentina/San_Juan',
           'M': 'America/Argentina/Mendoza', 'D': 'America/Argentina/San_Luis',
           'Z': 'America/Argentina/Rio_Gallegos', 'V': 'America/Argentina/Ushuaia'},
    'ES': {'CN': 'Atlantic/Canary', 'GC': 'Atlantic/Canary', 'TF': 'Atlantic/Canary',
           'CE': 'Africa/Ceuta', 'ML': 'Africa/Ceuta'},
    'PT': {'20': 'Atlantic/Azores', '30': 'Atlantic/Madeira'},
    'NZ': {'CIT': 'Pacific/Chatham'},
    'EC': {'W': 'Pacific/Galapagos'},
    'CL': {'AI': 'America/Coyhaique', 'MA': 'America/Punta_Arenas'},
    'UA': {'43': 'Europe/Simferopol', '40': 'Europe/Simferopol'},
    'MY': {'12': 'Asia/Kuching', '13': 'Asia/Kuching', '15': 'Asia/Kuching'},
    'RU': {'MOW': 'Europe/Moscow', 'MOS': 'Europe/Moscow', 'SPE': 'Europe/Moscow',
           'LEN': 'Europe/Moscow', 'KGD': 'Europe/Kaliningrad'},
    'CN': {'XJ': None},  # Xinjiang: Beijing time officially, Urumqi time locally
}
# Countries whose other zones are outlying islands, enclaves or small areas named
# in the state table above: zone.tab's "most of"/"mainland" zone as default.
TZ_COUNTRY_DEFAULT = {
    'DE': 'Europe/Berlin', 'ES': 'Europe/Madrid', 'PT': 'Europe/Lisbon',
    'NZ': 'Pacific/Auckland', 'EC': 'America/Guayaquil', 'CL': 'America/Santiago',
    'UA': 'Europe/Kyiv', 'MY': 'Asia/Kuala_Lumpur', 'CY': 'Asia/Nicosia', 'CN': 'Asia/Shanghai',
    'PG': 'Pacific/Port_Moresby', 'GL': 'America/Nuuk', 'MH': 'Pacific/Majuro',
}
# Cities whose zone differs from their state's default, or cities in split US
# states that have no default (normalised city name).
TZ_CITY = {
    ('US', 'TX'): {c: 'America/Denver' for c in (
        'el paso', 'horizon city', 'socorro', 'anthony', 'clint', 'san elizario', 'vinton',
        'fabens', 'sierra blanca', 'dell city')},
    ('US', 'KS'): {c: 'America/Denver' for c in ('goodland', 'sharon springs', 'tribune',
                                                 'syracuse')},
    ('US', 'OR'): {c: 'America/Boise' for c in ('ontario', 'nyssa', 'vale', 'adrian',
                                                'jordan valley')},
    ('US', 'NV'): {'west wendover': 'America/Denver'},
    ('US', 'AZ'): {c: 'America/Denver' for c in ('window rock', 'tuba city', 'chinle',
                                                 'kayenta', 'ganado', 'fort defiance')},
    ('US', 'MI'): {c: 'America/Menominee' for c in ('menominee', 'iron mountain', 'kingsford',
                                                    'iron river', 'norway')},
    ('US', 'IN'): {c: 'America/Chicago' for c in (
        'gary', 'hammond', 'east chicago', 'merrillville', 'crown point', 'valparaiso',
        'portage', 'michigan city', 'la porte', 'laporte', 'schererville', 'hobart',
        'munster', 'highland', 'griffith', 'dyer', 'st. john', 'lowell', 'chesterton',
        'evansville', 'newburgh', 'boonville', 'mount vernon')},
    ('US', 'FL'): {c: 'America/Chicago' for c in (
        'pensacola', 'panama city', 'panama city beach', 'fort walton beach', 'destin',
        'crestview', 'niceville', 'navarre', 'milton', 'gulf breeze', 'marianna',
        'defuniak springs', 'chipley', 'bonifay', 'lynn haven', 'callaway', 'freeport',
        'mary esther', 'valparaiso', 'century', 'graceville', 'parker', 'mexico beach')},
    ('US', 'AK'): {'juneau': 'America/Juneau', 'sitka': 'America/Sitka',
                   'metlakatla': 'America/Metlakatla', 'yakutat': 'America/Yakutat',
                   'nome': 'America/Nome', 'adak': 'America/Adak'},
    ('US', 'TN'): {
        **{c: 'America/New_York' for c in (
            'knoxville', 'chattanooga', 'johnson city', 'kingsport', 'bristol', 'oak ridge',
            'maryville', 'morristown', 'greeneville', 'elizabethton', 'sevierville',
            'gatlinburg', 'pigeon forge', 'alcoa', 'farragut', 'athens', 'cleveland')},
        **{c: 'America/Chicago' for c in (
            'nashville', 'memphis', 'clarksville', 'murfreesboro', 'franklin', 'jackson',
            'columbia', 'brentwood', 'hendersonville', 'smyrna', 'cookeville', 'gallatin',
            'lebanon', 'spring hill', 'collierville', 'bartlett', 'germantown',
            'mount juliet', 'dyersburg', 'tullahoma', 'shelbyville', 'mcminnville',
            'crossville')}},
    ('US', 'KY'): {
        'louisville': 'America/Kentucky/Louisville',
        **{c: 'America/New_York' for c in (
            'frankfort', 'lexington', 'covington', 'florence', 'georgetown', 'richmond',
            'ashland', 'nicholasville', 'winchester', 'danville', 'pikeville', 'hazard',
            'newport', 'erlanger', 'independence', 'berea', 'morehead', 'elizabethtown',
            'radcliff')},
        **{c: 'America/Chicago' for c in (
            'bowling green', 'owensboro', 'paducah', 'henderson', 'hopkinsville',
            'madisonville', 'murray', 'glasgow', 'mayfield', 'russellville')}},
    ('US', 'NE'): {
        **{c: 'America/Chicago' for c in (
            'omaha', 'lincoln', 'grand island', 'kearney', 'fremont', 'hastings', 'norfolk',
            'north platte', 'columbus', 'papillion', 'la vista', 'bellevue', 'beatrice',
            'south sioux city', 'mccook')},
        **{c: 'America/Denver' for c in ('scottsbluff', 'gering', 'alliance', 'sidney',
                                         'chadron', 'ogallala', 'kimball')}},
    ('US', 'SD'): {
        **{c: 'America/Chicago' for c in (
            'sioux falls', 'pierre', 'aberdeen', 'brookings', 'watertown', 'mitchell',
            'yankton', 'huron', 'vermillion', 'madison')},
        **{c: 'America/Denver' for c in ('rapid city', 'spearfish', 'sturgis', 'belle fourche',
                                         'box elder', 'hot springs', 'lead', 'deadwood',
                                         'custer')}},
    ('US', 'ND'): {
        **{c: 'America/Chicago' for c in (
            'bismarck', 'fargo', 'grand forks', 'minot', 'west fargo', 'jamestown',
            'williston', 'devils lake', 'valley city', 'wahpeton', 'mandan')},
        **{c: 'America/Denver' for c in ('dickinson', 'beach', 'bowman', 'hettinger')}},
    ('US', 'ID'): {
        **{c: 'America/Los_Angeles' for c in (
            "coeur d'alene", 'moscow', 'lewiston', 'post falls', 'sandpoint', 'hayden',
            'rathdrum', 'bonners ferry', 'kellogg')},
        **{c: 'America/Boise' for c in (
            'boise', 'meridian', 'nampa', 'idaho falls', 'pocatello', 'caldwell',
            'twin falls', 'eagle', 'kuna', 'rexburg', 'blackfoot', 'ammon', 'chubbuck',
            'mountain home', 'burley', 'jerome', 'hailey', 'ketchum', 'emmett',
            'garden city', 'star', 'payette', 'rupert', 'salmon', 'driggs', 'preston')}},
    ('CA', 'ON'): {'kenora': 'America/Winnipeg', 'atikokan': 'America/Atikokan'},
    ('CA', 'NL'): {'happy valley-goose bay': 'America/Goose_Bay',
                   'labrador city': 'America/Goose_Bay'},
    ('CA', 'BC'): {'creston': 'America/Creston', 'dawson creek': 'America/Dawson_Creek',
                   'fort st. john': 'America/Dawson_Creek', 'fort nelson': 'America/Fort_Nelson'},
    ('AU', 'NSW'): {'broken hill': 'Australia/Broken_Hill'},
    ('BR', 'PA'): {'santarem': 'America/Santarem', 'santarém': 'America/Santarem',
                   'belem': 'America/Belem', 'belém': 'America/Belem'},
    ('MX', 'CHH'): {'ciudad juarez': 'America/Ciudad_Juarez',
                    'ciudad juárez': 'America/Ciudad_Juarez', 'ojinaga': 'America/Ojinaga'},
    ('MX', 'NAY'): {'bahia de banderas': 'America/Bahia_Banderas',
                    'bahía de banderas': 'America/Bahia_Banderas'},
    ('MX', 'TAM'): {c: 'America/Matamoros' for c in ('matamoros', 'reynosa', 'nuevo laredo')},
    ('MX', 'COA'): {c: 'America/Matamoros' for c in ('piedras negras', 'ciudad acuña',
                                                     'ciudad acuna')},
}

# Countries recognised in NSI locationSet ids that are not ISO codes.
NSI_REGION_COUNTRY = {'conus': 'US', 'mainland china': 'CN'}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def norm_text(s):
    """Case-, accent- and punctuation-insensitive form for name matching."""
    s = unicodedata.normalize('NFKD', s)
    s = ''.join(c for c in s if not unicodedata.combining(c))
    s = re.sub(r'[^\w]+', ' ', s.casefold())
    return ' '.join(s.split())


def clean(s):
    if s is None:
        return None
    s = ' '.join(str(s).split())
    return s or None


def pg_array(items):
    """PostgreSQL array literal; empty list -> '' (NULL in the CSV)."""
    if not items:
        return ''
    out = []
    for it in items:
        if it == '' or it.upper() == 'NULL' or re.search(r'[{},"\\\s]', it):
            it = '"' + it.replace('\\', '\\\\').replace('"', '\\"') + '"'
        out.append(it)
    return '{' + ','.join(out) + '}'


def to_ascii_label(label):
    if label.isascii():
        return label
    try:
        return label.encode('idna').decode('ascii')
    except UnicodeError:
        try:
            return 'xn--' + label.encode('punycode').decode('ascii')
        except UnicodeError:
            return None


def to_ascii_host(host):
    labels = []
    for lab in host.split('.'):
        a = to_ascii_label(lab)
        if not a:
            return None
        labels.append(a.lower())
    return '.'.join(labels)


class PublicSuffixList:
    def __init__(self, path):
        self.rules = set()
        self.wild = set()
        self.exc = set()
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith('//'):
                    continue
                rule = line.split()[0]
                if rule.startswith('!'):
                    h = to_ascii_host(rule[1:])
                    if h:
                        self.exc.add(h)
                elif rule.startswith('*.'):
                    h = to_ascii_host(rule[2:])
                    if h:
                        self.wild.add(h)
                else:
                    h = to_ascii_host(rule)
                    if h:
                        self.rules.add(h)

    def suffix_len(self, labels):
        """Number of labels of the public suffix of `labels` (list, left to right)."""
        n = len(labels)
        best = 1  # implicit "*" rule
        for i in range(n):
            cand = '.'.join(labels[i:])
            k = n - i
            if cand in self.exc:
                return k - 1  # exception: suffix is the rule minus its leftmost label
            if cand in self.rules and k > best:
                best = k
            if i + 1 < n and '.'.join(labels[i + 1:]) in self.wild and k > best:
                best = k
        return best

    def registrable(self, host):
        labels = host.split('.')
        k = self.suffix_len(labels)
        if len(labels) <= k:
            return None  # the host is itself a public suffix
        return '.'.join(labels[-(k + 1):])

    def is_suffix(self, host):
        return self.suffix_len(host.split('.')) >= len(host.split('.'))


HOST_RE = re.compile(r'^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$')


class DomainTool:
    def __init__(self, psl):
        self.psl = psl

    def host_path(self, url):
        url = (url or '').strip()
        if not url:
            return None, None
        if '://' not in url:
            url = 'http://' + url.lstrip('/')
        try:
            p = urllib.parse.urlsplit(url)
            host = p.hostname
        except ValueError:
            return None, None
        if not host:
            return None, None
        host = host.strip().rstrip('.').lower()
        try:
            ipaddress.ip_address(host)
            return None, None  # IP address, not a domain
        except ValueError:
            pass
        host = to_ascii_host(host)
        if not host or not HOST_RE.match(host):
            return None, None
        return host, p.path or ''

    def is_root(self, url, dom):
        """True when the URL is the domain's home page (bare or www. host, path
        empty, '/' or a language prefix such as /en or /de-at/)."""
        host, path = self.host_path(url)
        return host in (dom, 'www.' + dom) and bool(
            re.fullmatch(r'(/([a-z]{2}([-_][a-z]{2})?/?)?)?', (path or '').lower()))

    def registrable(self, url_or_host, allow_generic_root=True):
        """Registrable domain of a URL or host, or None if it is not usable."""
        host, path = self.host_path(url_or_host)
        if not host:
            return None
        labels = host.split('.')
        for i in range(len(labels) - 1):
            parent = '.'.join(labels[i:])
            if parent in GENERIC_HOSTS:
                bare = host in (parent, 'www.' + parent)
                if not (allow_generic_root and bare and path in ('', '/')):
                    return None
                break
        reg = self.psl.registrable(host)
        if not reg or reg in GENERIC_HOSTS and not allow_generic_root:
            return None
        return reg


def load_iso():
    with open(ISO1, encoding='utf-8') as f:
        c1 = json.load(f)['3166-1']
    with open(ISO2, encoding='utf-8') as f:
        c2 = json.load(f)['3166-2']
    countries = {c['alpha_2']: c['name'] for c in c1}
    alpha3 = {c['alpha_3']: c['alpha_2'] for c in c1}
    subdiv = {}
    by_name = collections.defaultdict(lambda: collections.defaultdict(set))
    for s in c2:
        cc, code = s['code'].split('-', 1)
        subdiv[(cc, code)] = s['name']
        by_name[cc][norm_text(s['name'])].add(code)
    return countries, alpha3, subdiv, by_name


def load_zones():
    zones = collections.defaultdict(set)
    for path, multi in ((ZONE_TAB, False), (ZONE1970_TAB, True)):
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.startswith('#') or not line.strip():
                    continue
                p = line.rstrip('\n').split('\t')
                if path == ZONE_TAB:
                    zones[p[0]].add(p[2])
    return zones


class Geo:
    def __init__(self):
        self.countries, self.alpha3, self.subdiv, self.by_name = load_iso()
        self.zones = load_zones()  # zone.tab: one line per (country, zone)
        self.city_zone = {}
        for cc, zs in self.zones.items():
            m = collections.defaultdict(set)
            for z in zs:
                m[norm_text(z.rsplit('/', 1)[-1].replace('_', ' '))].add(z)
            self.city_zone[cc] = {k: next(iter(v)) for k, v in m.items() if len(v) == 1}

    def country(self, cc):
        if not cc:
            return None
        cc = cc.strip().upper()
        return cc if cc in self.countries else None

    def state(self, cc, code):
        if not cc or not code:
            return None
        code = code.strip().upper()
        return code if (cc, code) in self.subdiv else None

    def state_by_name(self, cc, name):
        if not cc or not name:
            return None
        codes = self.by_name.get(cc, {}).get(norm_text(name))
        if codes and len(codes) == 1:
            return next(iter(codes))
        return None

    def timezone(self, cc, st, city):
        if not cc:
            return None
        zs = self.zones.get(cc)
        if not zs:
            return None
        if len(zs) == 1:
            return next(iter(zs))
        ncity = norm_text(city) if city else None
        if st and ncity:
            z = TZ_CITY.get((cc, st), {}).get(ncity) or \
                TZ_CITY.get((cc, st), {}).get(city.strip().lower())
            if z:
                return z
        if st and st in TZ_STATE.get(cc, {}):
            return TZ_STATE[cc][st]
        if ncity and ncity in self.city_zone.get(cc, {}):
            return self.city_zone[cc][ncity]
        return TZ_COUNTRY_DEFAULT.get(cc) if (not st or st not in TZ_STATE.get(cc, {})) else None


def industry_fields(cls, sub):
    rid, sector, group = cls
    return {
        'industry_reveal_id': rid, 'industry': INDUSTRIES[rid] if rid else None,
        'sector': sector, 'industry_group': group, 'sub_industry': sub,
    }


def title_label(v):
    return ' '.join(w.capitalize() for w in re.split(r'[_\s]+', v) if w) or None


# ---------------------------------------------------------------------------
# sources -> records: dict(domain, other_domains, fields...)
# ---------------------------------------------------------------------------
def read_dotgov(shared, dt, geo, stats):
    recs = []
    with open(os.path.join(shared, 'dotgov', 'current-full.csv'), encoding='utf-8',
              newline='') as f:
        for row in csv.DictReader(f):
            stats['dotgov rows'] += 1
            dom = dt.registrable(row['Domain name'])
            if not dom:
                stats['dotgov skipped (no registrable domain)'] += 1
                continue
            dtype = row['Domain type'].strip()
            base = dtype.replace(' - Election', '')
            ctype, cls, sub = DOTGOV_TYPE.get(base, ('government', C_GOV, base or None))
            if dtype.endswith(' - Election'):
                sub = f'{sub} (Election)'
            org = clean(row['Organization name'])
            suborg = clean(row['Suborganization name'])
            # The sub-organisation is the unit that holds the domain (e.g. NOAA under
            # the Department of Commerce); use it unless it merely repeats the parent.
            name = org
            if suborg and org and norm_text(suborg) not in norm_text(org):
                name = suborg
            elif suborg and not org:
                name = suborg
            st = geo.state('US', row['State'])
            rec = {
                'source': 'dotgov', 'domain': dom, 'others': [],
                'name': name, 'company_type': ctype,
                'city': clean(row['City']), 'country_code': 'US', 'state_code': st,
                'dotgov_type': base, 'root': True,
            }
            rec.update(industry_fields(cls, sub))
            recs.append(rec)
    return recs


def read_universities(shared, dt, geo, stats):
    with open(os.path.join(shared, 'universities', 'world_universities_and_domains.json'),
              encoding='utf-8') as f:
        data = json.load(f)
    recs = []
    for u in data:
        stats['universities rows'] += 1
        doms = []
        for d in list(u.get('domains') or []) + list(u.get('web_pages') or []):
            r = dt.registrable(d, allow_generic_root=False)
            if r and r not in doms:
                doms.append(r)
        if not doms:
            stats['universities skipped (no registrable domain)'] += 1
            continue
        # primary: the home page's domain when it is one of the listed domains
        for wp in u.get('web_pages') or []:
            d = dt.registrable(wp, allow_generic_root=False)
            if d and d in doms[1:]:
                doms.remove(d)
                doms.insert(0, d)
            break
        cc = geo.country(u.get('alpha_two_code'))
        st = geo.state_by_name(cc, u.get('state-province')) if cc else None
        first_host = doms[0] if any((h or '').strip().lower() == doms[0]
                                    for h in u.get('domains') or []) else None
        rec = {
            'source': 'universities', 'domain': doms[0], 'others': doms[1:],
            'name': clean(u.get('name')), 'company_type': 'education',
            'country_code': cc, 'state_code': st,
            'exact': first_host == doms[0],
            'root': any(dt.host_path(h)[0] in (doms[0], 'www.' + doms[0])
                        for h in list(u.get('domains') or []) + list(u.get('web_pages') or [])),
        }
        rec.update(industry_fields(C_EDU, 'University'))
        recs.append(rec)
    # Several entries can share one registrable domain (faculties, campuses listed
    # separately under sub-domains): keep the entry whose listed domain is the
    # registrable domain itself, then the alphabetically first name.
    recs.sort(key=lambda r: (r['domain'], not r['exact'], r['name'] or ''))
    return recs


FRONT_RE = re.compile(r'\A---\s*\n(.*?)\n---\s*\n', re.S)


def parse_front_matter(text):
    m = FRONT_RE.match(text)
    if not m:
        return {}, text
    meta, key = {}, None
    for line in m.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        lm = re.match(r'^\s+-\s*(.*)$', line)
        if lm and key:
            if not isinstance(meta.get(key), list):
                meta[key] = []
            meta[key].append(lm.group(1).strip().strip('"\''))
            continue
        km = re.match(r'^([A-Za-z0-9_-]+):\s*(.*)$', line)
        if km:
            key, val = km.group(1), km.group(2).strip()
            if len(val) >= 2 and val[0] == val[-1] and val[0] in '"\'':
                val = val[1:-1]
            meta[key] = val if val else []
    return meta, text[m.end():]


def md_sections(body):
    secs = {}
    for m in re.finditer(r'^##\s+(.+?)\s*\n(.*?)(?=^##\s|\Z)', body, re.M | re.S):
        secs[m.group(1).strip().lower()] = m.group(2)
    return secs


def md_plain(s):
    s = re.sub(r'<[^>]+>', ' ', s)                       # HTML tags
    s = re.sub(r'!\[([^\]]*)\]\([^)]*\)', r'\1', s)      # images
    s = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', s)       # links
    s = re.sub(r'\[([^\]]*)\]\[[^\]]*\]', r'\1', s)      # reference links
    s = re.sub(r'(\*\*|__|\*|`)', '', s)                 # emphasis, code
    s = re.sub(r'(?<!\w)_([^_]+)_(?!\w)', r'\1', s)
    return ' '.join(s.split())


def first_paragraph(section):
    paras = re.split(r'\n\s*\n', section.strip())
    for p in paras:
        lines = [ln for ln in p.splitlines()
                 if not re.match(r'^\s*(#{1,6}\s|>|\||---)', ln)]
        txt = md_plain(' '.join(lines))
        if len(txt) >= 3:
            if len(txt) > 500:
                cut = txt[:500]
                m = re.search(r'^(.*[.!?])\s', cut)
                txt = m.group(1) if m and len(m.group(1)) >= 100 else \
                    cut.rsplit(' ', 1)[0].rstrip(',;:') + '…'
                if len(txt) > 500:
                    txt = txt[:499] + '…'
            return txt
    return None


# A stated head-count: "125 and growing", "~100 currently", "Around 280 employees".
# Ranges ("11-50"), lower bounds ("70+", "over 100"), "<50" and words are ignored.
EMP_RE = re.compile(
    r'^(?:(?:~|about|around|approximately|approx\.?|roughly|currently|we are|we\'re)\s*)*'
    r'(\d{1,3}(?:,\d{3})+|\d{1,6})(?![\d,.]*\s*(?:[-–+/%]|k\b|to\b|or\b))'
    r'(?=\s|[.,;:!)]|$)', re.I)


def parse_employees(section):
    txt = md_plain(section.strip().split('\n\n')[0]) if section else ''
    m = EMP_RE.match(txt.strip())
    if not m:
        return None
    n = int(m.group(1).replace(',', ''))
    if n <= 0 or 1900 <= n <= 2100:  # a year, not a head-count
        return None
    return n


def read_remote(shared, dt, geo, stats):
    recs = []
    for path in sorted(glob.glob(os.path.join(shared, 'remote-companies', 'companies', '*.md'))):
        stats['remote-companies rows'] += 1
        with open(path, encoding='utf-8') as f:
            text = f.read()
        meta, body = parse_front_matter(text)
        web = meta.get('website') if isinstance(meta.get('website'), str) else None
        dom = dt.registrable(web, allow_generic_root=False) if web else None
        if not dom:
            stats['remote-companies skipped (no usable website)'] += 1
            continue
        secs = md_sections(body)
        tech = meta.get('technologies') if isinstance(meta.get('technologies'), list) else []
        tech = sorted({re.sub(r'\s+', '_', t.strip().lower()) for t in tech if t.strip()})
        rec = {
            'source': 'remote-companies', 'domain': dom, 'others': [],
            'name': clean(meta.get('title')) if isinstance(meta.get('title'), str) else None,
            'company_type': 'private',
            'description': first_paragraph(secs['company blurb'])
            if 'company blurb' in secs else None,
            'employees': parse_employees(secs.get('company size', '')),
            'tech': tech, 'root': dt.is_root(web, dom),
        }
        rec.update(industry_fields(C_SOFTWARE, 'Software'))
        recs.append(rec)
    return recs


def nsi_location(entry, geo):
    """(country, state) for one NSI locationSet include entry, or (None, None)."""
    if not isinstance(entry, str):
        return None, None  # a point/radius
    e = entry.lower()
    if e.endswith('.geojson'):
        e = e[:-len('.geojson')]
    if e in NSI_REGION_COUNTRY:
        return NSI_REGION_COUNTRY[e], None
    if re.fullmatch(r'[a-z]{2}', e):
        return geo.country(e), None
    if re.fullmatch(r'[a-z]{3}', e):
        return geo.country(geo.alpha3.get(e.upper())), None
    m = re.fullmatch(r'([a-z]{2})-([a-z0-9]+)(?:[-_].*)?', e)
    if m:
        cc = geo.country(m.group(1))
        if cc:
            return cc, geo.state(cc, m.group(2))
    return None, None


def social(ids):
    tw = ids.get('twitter')
    tw = tw.strip().lstrip('@') if isinstance(tw, str) and tw.strip() else None
    fb = ids.get('facebook')
    fb = fb.strip().strip('/') if isinstance(fb, str) and fb.strip() else None
    li = ids.get('linkedin')
    li = li.strip().strip('/') if isinstance(li, str) and li.strip() else None
    if li:
        if li.startswith('in/'):
            li = None  # a person, not an organisation
        elif not re.match(r'^(company|school|showcase)/', li):
            li = 'company/' + li
    return tw, fb, li


def read_nsi(shared, dt, geo, stats):
    with gzip.open(os.path.join(shared, 'nsi', 'nsi.json.gz'), 'rt', encoding='utf-8') as f:
        nsi = json.load(f)['nsi']
    with gzip.open(os.path.join(shared, 'nsi', 'wikidata.json.gz'), 'rt',
                   encoding='utf-8') as f:
        wd = json.load(f)['wikidata']

    # QID -> usage: roles, categories, operator:type values, location entries
    use = collections.defaultdict(lambda: {
        'roles': collections.Counter(), 'cats': collections.Counter(),
        'optype': collections.Counter(), 'loc': set(), 'items': 0})
    for catpath in sorted(nsi):
        tree, cat = catpath.split('/', 1)
        for it in nsi[catpath]['items']:
            stats['nsi items'] += 1
            tags = it.get('tags', {})
            locs = it.get('locationSet', {}).get('include', [])
            for role, key in (('brand', 'brand:wikidata'), ('operator', 'operator:wikidata'),
                              ('network', 'network:wikidata')):
                q = tags.get(key)
                if not q or not re.fullmatch(r'Q\d+', q):
                    continue
                u = use[q]
                u['roles'][role] += 1
                u['cats'][cat] += 1
                u['items'] += 1
                if role == 'operator' and tags.get('operator:type'):
                    u['optype'][tags['operator:type']] += 1
                for e in locs:
                    u['loc'].add(json.dumps(e, sort_keys=True))
    stats['nsi organisations (QIDs as brand/operator/network)'] = len(use)

    recs = []
    for q in sorted(use, key=lambda x: int(x[1:])):
        u = use[q]
        w = wd.get(q)
        if not w:
            stats['nsi skipped (no Wikidata entry)'] += 1
            continue
        if w.get('dissolutions'):
            stats['nsi skipped (dissolved organisation)'] += 1
            continue
        ids = w.get('identities') or {}
        sites = []
        if isinstance(ids.get('website'), str):
            sites.append(ids['website'])
        sites += [s for s in (w.get('officialWebsites') or []) if isinstance(s, str)]
        doms, root = [], False
        for s in sites:
            d = dt.registrable(s)
            if d and d not in doms:
                doms.append(d)
                if len(doms) == 1:
                    root = dt.is_root(s, d)
        if not doms:
            stats['nsi skipped (no usable website)'] += 1
            continue
        # category: most used, ties by name
        cat = sorted(u['cats'].items(),
                     key=lambda kv: (cat_is_secondary(kv[0]), -kv[1], kv[0]))[0][0]
        cls = NSI_CATEGORY.get(cat) or NSI_KEY_FALLBACK.get(cat.split('/')[0])
        sub = title_label(cat.split('/', 1)[1])
        role = sorted(u['roles'].items(),
                      key=lambda kv: (-kv[1], ['brand', 'operator', 'network'].index(kv[0])))[0][0]
        # company type: operator:type (majority, ties by name) > category > brand=private
        ctype = None
        if u['optype']:
            ot = sorted(u['optype'].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            ctype = OPERATOR_TYPE.get(ot)
        if not ctype:
            ctype = CATEGORY_TYPE.get(cat)
        if not ctype and role == 'brand':
            ctype = 'private'
        # location: only when all NSI items of the organisation name the same single area
        cc = st = None
        if len(u['loc']) == 1:
            cc, st = nsi_location(json.loads(next(iter(u['loc']))), geo)
        place = PLACE_RE.match(clean(w.get('description')) or '')
        edu = EDU_RE.match(clean(w.get('description')) or '')
        if place and role != 'brand':
            ctype = 'government'
            cls = C_GOV
            sub = title_label(place.group(1).lower())
        elif edu and role != 'brand':
            ctype = 'education'
            cls = C_EDU
            sub = title_label(edu.group(1).lower())
        tw, fb, li = social(ids)
        logo = (w.get('logos') or {}).get('wikidata')
        rec = {
            'source': 'nsi', 'domain': doms[0], 'others': doms[1:],
            'name': clean(w.get('label')), 'company_type': ctype,
            'description': clean(w.get('description')),
            'logo': logo if isinstance(logo, str) and logo.startswith('https://') else None,
            'twitter': tw, 'facebook': fb, 'linkedin': li,
            'country_code': cc, 'state_code': st,
            'rank': (not root, norm_text(w.get('label') or '').replace(' ', '') !=
                     doms[0].split('.')[0].replace('-', ''),
                     ['brand', 'operator', 'network'].index(role), -u['items'],
                     int(q[1:])),
            'qid': q, 'root': root,
        }
        if rec['name'] is None:
            rec['name'] = None
        if cls:
            rec.update(industry_fields(cls, sub))
        else:
            rec.update({'sub_industry': sub})
            stats[f'nsi category without industry mapping: {cat}'] += 1
        recs.append(rec)
    recs.sort(key=lambda r: (r['domain'], r['rank']))
    return recs


# ---------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------
IND_KEYS = ('sector', 'industry_group', 'industry', 'sub_industry', 'industry_reveal_id')
GEO_KEYS = ('city', 'state_code', 'country_code')


def first(recs, key, order):
    for src in order:
        for r in recs:
            if r['source'] == src and r.get(key) not in (None, '', []):
                return r
    return None


def merge(all_recs, geo, dt):
    by_dom = collections.OrderedDict()
    for r in all_recs:
        by_dom.setdefault(r['domain'], []).append(r)
    rows = {}
    for dom in sorted(by_dom):
        allrecs = by_dom[dom]  # within a source, records are already in precedence order
        # Records whose website is the domain's home page describe the domain's owner;
        # records for a sub-site (parks.ca.gov, amazon.com/fresh) describe a unit of it
        # and are used only when no home-page record exists. Per source, only the
        # best-ranked record contributes fields; the others contribute aliases.
        recs = [r for r in allrecs if r.get('root')] or allrecs
        seen_src, prim = set(), []
        for r in recs:
            if r['source'] not in seen_src:
                seen_src.add(r['source'])
                prim.append(r)
        recs = prim
        row = {c: None for c in COLUMNS}
        row['domain'] = dom
        row['clearbit_id'] = str(uuid.uuid5(uuid.NAMESPACE_DNS, dom))
        r = first(recs, 'name', SOURCE_ORDER)
        row['name'] = r['name'] if r else dom
        r = first(recs, 'company_type', SOURCE_ORDER)
        row['company_type'] = r['company_type'] if r else None
        r = first(recs, 'sector', SOURCE_ORDER)
        if r:
            for k in IND_KEYS:
                row[k] = r.get(k)
        else:
            r = first(recs, 'sub_industry', SOURCE_ORDER)
            if r:
                row['sub_industry'] = r['sub_industry']
        r = first(recs, 'country_code', SOURCE_ORDER)
        if r:
            row['country_code'] = r['country_code']
            row['state_code'] = r.get('state_code')
            row['city'] = r.get('city')
        r = first(recs, 'description', ['remote-companies', 'nsi'])
        row['description'] = r['description'] if r else None
        for k in ('logo', 'twitter', 'facebook', 'linkedin'):
            r = first(recs, k, ['nsi'])
            row[k] = r[k] if r else None
        r = first(recs, 'employees', ['remote-companies'])
        row['employees'] = r['employees'] if r else None
        r = first(recs, 'tech', ['remote-companies'])
        row['tech'] = r['tech'] if r else []
        row['aliases'] = []
        row['_others'] = [d for rr in allrecs for d in rr['others']]
        row['source'] = '+'.join(s for s in SOURCE_ORDER if any(x['source'] == s for x in recs))
        cc, st = row['country_code'], row['state_code']
        row['country_name'] = geo.countries[cc] if cc else None
        row['state_name'] = geo.subdiv[(cc, st)] if cc and st else None
        tz = geo.timezone(cc, st, row['city'])
        if tz and cc == 'US' and st == 'AZ' and any(x.get('dotgov_type') == 'Tribal'
                                                     for x in recs):
            tz = None  # the Navajo Nation observes DST (America/Denver); others do not
        row['timezone'] = tz
        row['phone_numbers'] = []
        row['email'] = []
        rows[dom] = row
    # aliases: other registrable domains not owned by any row, first claimant wins
    claimed = set(rows)
    for dom in sorted(rows):
        row = rows[dom]
        for d in row.pop('_others'):
            if d not in claimed:
                claimed.add(d)
                row['aliases'].append(d)
        row['aliases'].sort()
    return rows


def fmt(v):
    if v is None:
        return ''
    if isinstance(v, list):
        return pg_array(v)
    return str(v)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description='Build data/directory.csv.gz')
    ap.add_argument('--shared', default=os.path.join(os.path.dirname(repo), 'shared', 'data'))
    ap.add_argument('--out', default=os.path.join(repo, 'data'))
    a = ap.parse_args()

    stats = collections.Counter()
    psl = PublicSuffixList(PSL)
    dt = DomainTool(psl)
    geo = Geo()

    per_source = {}
    all_recs = []
    for name, fn in (('dotgov', read_dotgov), ('universities', read_universities),
                     ('nsi', read_nsi), ('remote-companies', read_remote)):
        recs = fn(a.shared, dt, geo, stats)
        per_source[name] = recs
        all_recs += recs
    rows = merge(all_recs, geo, dt)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(COLUMNS)
    for dom in sorted(rows):
        w.writerow([fmt(rows[dom][c]) for c in COLUMNS])
    raw = buf.getvalue().encode('utf-8')
    out = os.path.join(a.out, 'directory.csv.gz')
    bio = io.BytesIO()
    with gzip.GzipFile(filename='', fileobj=bio, mode='wb', compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    with open(out, 'wb') as f:
        f.write(bio.getvalue())

    # ---- report ----
    print('input:')
    for k in sorted(stats):
        if not k.startswith('nsi category without'):
            print(f'  {k}: {stats[k]}')
    unmapped = sorted((k, v) for k, v in stats.items() if k.startswith('nsi category without'))
    if unmapped:
        print(f'  nsi organisations in categories without industry mapping: '
              f'{sum(v for _, v in unmapped)} ({", ".join(k.split(": ")[1] for k, _ in unmapped)})')
    print('records per source (with a registrable domain), distinct domains:')
    for name, recs in per_source.items():
        print(f'  {name}: {len(recs)} records, {len({r["domain"] for r in recs})} domains')
    print(f'rows after dedup: {len(rows)}')
    src = collections.Counter(r['source'] for r in rows.values())
    for k, v in sorted(src.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f'  source {k}: {v}')
    contrib = collections.Counter()
    for r in rows.values():
        for s in r['source'].split('+'):
            contrib[s] += 1
    for k in SOURCE_ORDER:
        print(f'  rows with data from {k}: {contrib[k]}')
    print('rows with each field set:')
    for c in COLUMNS:
        n = sum(1 for r in rows.values() if r[c] not in (None, '', []))
        print(f'  {c}: {n}')
    print(f'wrote {out} ({len(raw)} bytes uncompressed, {len(bio.getvalue())} compressed)')


if __name__ == '__main__':
    main()
