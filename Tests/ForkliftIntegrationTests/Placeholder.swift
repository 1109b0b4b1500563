// integration tests follow
