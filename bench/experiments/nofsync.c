/* Experiment only (LD_PRELOAD into fox): fsync and fdatasync return at once. An upper
 * bound for what batching durable writes (one fsync per batch of deliveries: group
 * commit) could give the webhook path. Never use it for anything else. */
int fsync(int fd);
int fdatasync(int fd);
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
