SELECT DISTINCT event_type, ad_type FROM events;
