int forklift_test_not_a_plugin(void) { return 42; }
