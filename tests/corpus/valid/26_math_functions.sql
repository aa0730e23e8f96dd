SELECT sensor_id,
       abs(temperature) AS abs_t,
       round(temperature, 1) AS rounded,
       floor(humidity) AS floor_h,
       ceil(humidity) AS ceil_h,
       sqrt(humidity) AS root_h,
       power(temperature, 2) AS t_squared,
       coalesce(temperature, 0.0) AS t_or_zero,
       greatest(temperature, humidity) AS larger
FROM sensors;
