SET group_size = 'auto';
