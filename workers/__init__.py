"""What runs in RQ workers: release ticks and hook deliveries, and the scheduler that feeds them."""
