SET workers TO 4;
