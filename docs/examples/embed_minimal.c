/* Migrates a running program's memory with pagewire's C interface. A writer thread stands
 * for the guest, whose RAM is two blocks at the source (below and above a PCI hole, mapped
 * apart) and one at the destination; the library tracks its writes itself (userfaultfd),
 * so the hooks are only pause and resume. Run the destination first, then the source:
 *   embed_minimal destination net_memif0,role=server,socket=/tmp/c.sock received.img
 *   embed_minimal source      net_memif0,role=client,socket=/tmp/c.sock sent.img
 * Each writes its copy of the memory to the file once the migration is done: byte-equal.
 * A fourth argument `postcopy` at both ends moves the guest before its pages (at once): the
 * destination's start hook is where a hypervisor would start its vCPUs. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
#include <pagewire.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096u
#define GUEST_PAGES 8192u /* 32 MiB */
#define LOW_PAGES 3001u   /* the first block's; the second holds the rest */

struct guest {
  pagewire_ram_block ram[2];
  pthread_mutex_t lock; /* held while writing: pause() takes it */
  int paused;
  atomic_int stop;
};

static void *guest_run(void *arg) {
  struct guest *g = arg;
  for (uint64_t n = 1; !atomic_load(&g->stop); ++n) {
    pthread_mutex_lock(&g->lock);
    const uint64_t page = n * 7919 % GUEST_PAGES, high = page >= LOW_PAGES;
    unsigned char *block = g->ram[high].host;
    if (!g->paused) memcpy(block + (page - high * LOW_PAGES) * PAGE + n % 512 * 8, &n, sizeof n);
    pthread_mutex_unlock(&g->lock);
  }
  return NULL;
}

static int guest_pause(void *user) {
  struct guest *g = user;
  pthread_mutex_lock(&g->lock);
  g->paused = 1;
  pthread_mutex_unlock(&g->lock);
  return 0;
}

static void guest_resume(void *user) {
  struct guest *g = user;
  pthread_mutex_lock(&g->lock);
  g->paused = 0;
  pthread_mutex_unlock(&g->lock);
}

static int save(const char *path, const pagewire_ram_block *ram, size_t blocks) { /* pages in order */
  FILE *out = fopen(path, "wb");
  int ok = out != NULL;
  for (size_t b = 0; ok && b < blocks; ++b) ok = fwrite(ram[b].host, 1, ram[b].bytes, out) == ram[b].bytes;
  if (out != NULL) ok = fclose(out) == 0 && ok;
  return ok ? 0 : 1;
}

static int commit(void *user, const pagewire_ram_block *ram, size_t blocks, const void *state, size_t state_bytes,
                  const char *digest) {
  (void)state, (void)state_bytes;
  printf("destination: committed, digest %s\n", digest);
  return save(user, ram, blocks); /* a hypervisor would start the guest here */
}

static int start(void *user, const pagewire_ram_block *ram, size_t blocks, const void *state, size_t state_bytes,
                 uint64_t missing_pages) {
  (void)user, (void)ram, (void)blocks, (void)state, (void)state_bytes;
  printf("destination: the guest starts with %llu pages still to come\n", (unsigned long long)missing_pages);
  return 0; /* a hypervisor would start the vCPUs here: their first touches of those pages wait */
}

static void *map(uint64_t pages) { /* pre-faulted: first touches would land in the rounds */
  void *memory = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  return memory == MAP_FAILED ? NULL : memory;
}

static int failed(const char *what, const pagewire_error *error) {
  fprintf(stderr, "%s: %s (code %d)\n", what, error->message, (int)error->code);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4 && !(argc == 5 && strcmp(argv[4], "postcopy") == 0)) {
    return fprintf(stderr, "usage: %s source|destination VDEV FILE [postcopy]\n", argv[0]), 2;
  }
  const int source = strcmp(argv[1], "source") == 0, postcopy = argc == 5;
  pagewire_error error;
  pagewire_link_config config;
  pagewire_link_config_init(&config);
  config.vdev = argv[2];
  config.name = argv[1];
  config.local_ip = source ? "10.0.0.1" : "10.0.0.2";
  config.peer_ip = source ? "10.0.0.2" : "10.0.0.1";
  config.timeout_ms = 30000;
  pagewire_link *link;
  if (pagewire_link_open(&config, &link, &error) != PAGEWIRE_OK) return failed("link", &error);
  const uint64_t state_pages = pagewire_state_pages(0, PAGE);
  void *state = map(state_pages);
  if (state == NULL) return perror("mmap"), 1;
  if (pagewire_link_await_up(link, 30000, &error) != PAGEWIRE_OK) return failed("link", &error);

  if (!source) {
    pagewire_destination *destination;
    const pagewire_ram_block ram = {map(GUEST_PAGES), GUEST_PAGES * PAGE};
    if (ram.host == NULL) return perror("mmap"), 1;
    if (pagewire_destination_accept_blocks(link, &ram, 1, state, state_pages * PAGE, PAGE, &destination, &error) !=
            PAGEWIRE_OK ||
        pagewire_destination_run_postcopy(destination, commit, postcopy ? start : NULL, argv[3], 10000, NULL, &error) !=
            PAGEWIRE_OK) {
      return failed("destination", &error);
    }
    pagewire_destination_close(destination);
    pagewire_link_close(link);
    return 0;
  }
  struct guest g = {.ram = {{map(LOW_PAGES), LOW_PAGES * PAGE}, {map(GUEST_PAGES - LOW_PAGES), (GUEST_PAGES - LOW_PAGES) * PAGE}},
                    .lock = PTHREAD_MUTEX_INITIALIZER};
  if (g.ram[0].host == NULL || g.ram[1].host == NULL) return perror("mmap"), 1;
  pthread_t writer;
  pthread_create(&writer, NULL, guest_run, &g);
  pagewire_source *src;
  pagewire_source_hooks hooks = {.user = &g, .pause = guest_pause, .resume = guest_resume};
  pagewire_migration_report report;
  pagewire_source_options options;
  pagewire_source_options_init(&options);
  if (postcopy) options.postcopy = "now";
  if (pagewire_source_connect_blocks(link, g.ram, 2, state, state_pages * PAGE, PAGE, &options, &src, &error) != PAGEWIRE_OK ||
      pagewire_source_run(src, &hooks, NULL, 0, &report, &error) != PAGEWIRE_OK) {
    return failed("source", &error);
  }
  printf("source: migrated in %u rounds, downtime %.1f ms, digest %s%s\n", report.rounds, report.downtime_ms,
         report.digest, report.postcopy ? " (postcopy)" : "");
  int status = save(argv[3], g.ram, 2); /* the guest stays paused: it runs on the destination */
  atomic_store(&g.stop, 1);
  pthread_join(writer, NULL);
  pagewire_source_close(src);
  pagewire_link_close(link);
  return status;
}
