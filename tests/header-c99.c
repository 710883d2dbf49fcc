/* SPDX-License-Identifier: MIT */
/* The public header compiles as strict C99 (built with -std=c99 -pedantic). */
#include <shmx.h>

int main(void)
{
	struct shmx_ds ds = { 0 };
	struct shmx_info info = { 0 };

	(void)ds;
	(void)info;
	/* taking the addresses links against the library; nothing is called,
	 * so no keeper is started */
	int (*volatile get)(key_t, size_t, int) = shmx_get;
	int (*volatile at)(int, const void *, int, void **) = shmx_at;
	int (*volatile dt)(const void *) = shmx_dt;
	int (*volatile ctl)(int, int, struct shmx_ds *) = shmx_ctl;
	int (*volatile list)(struct shmx_ds *, size_t) = shmx_list;
	int (*volatile info_fn)(struct shmx_info *) = shmx_info;
	int (*volatile fd)(int, int) = shmx_fd;

	/* the pointers' types check the signatures; volatile keeps the links */
	return (get && at && dt && ctl && list && info_fn && fd && SHMX_LBA > 0) ? 0 : 1;
}
