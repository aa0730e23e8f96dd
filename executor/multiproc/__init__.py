"""The worker-process executors: Drizzle and BSP scheduling, the driver, the workers, shuffle and transports."""
