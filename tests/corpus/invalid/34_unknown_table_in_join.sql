-- error: BindError 3:18 unknown stream or table 'campaign' (did you mean 'campaigns'?)
SELECT campaign_id
FROM events JOIN campaign USING (ad_id);
