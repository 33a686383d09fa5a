"""Where the jobs of ``rcforest aws`` run: a bounded queue of job threads, and training in its own process.

The API's handlers never wait for a job. A Create call checks the request,
registers the job and puts it in a :class:`JobQueue`: a fixed number of job
threads take the jobs in order, and at most ``backlog`` jobs wait (beyond,
the Create call answers AWS's ``ResourceLimitExceeded``). A job thread does
a job's S3 and CloudWatch work and hands the training itself to
:class:`TrainingProcesses`: child processes, so training holds neither the
API's threads, nor the server's GIL, nor the scoring lock of the endpoints,
and leaves one core to them.
"""

import collections
import concurrent.futures
import logging
import multiprocessing
import os
import threading

from rcforest.aws.resources import ApiError

__all__ = ["JobQueue", "TrainingProcesses"]

logger = logging.getLogger(__name__)
# How much lower the training processes' scheduling priority is than the server's.
_NICENESS = 10


class JobQueue:
    """Tasks run in turn by a fixed number of threads; a bounded number wait.

    Parameters
    ----------
    workers : int, default 1
        Job threads (jobs running at once).
    backlog : int, default 100
        Tasks that may wait; :meth:`submit` refuses more.
    name : str, default "rcforest-aws-job"
        The threads' name prefix.
    """

    def __init__(self, workers=1, backlog=100, name="rcforest-aws-job"):
        self.workers = workers
        self.backlog = backlog
        self._ready = threading.Condition()
        self._waiting = collections.deque()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True) for number in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self):
        """int: tasks waiting for a job thread."""
        return len(self._waiting)

    def room(self, count=1):
        """Raise AWS's ``ResourceLimitExceeded`` unless ``count`` more tasks may wait."""
        if len(self._waiting) + count > self.backlog:
            raise ApiError(
                "ResourceLimitExceeded",
                f"{len(self._waiting)} jobs are waiting, the most this server queues is {self.backlog}; "
                "try again when some have ended",
            )

    def submit(self, task, force=False):
        """Queue ``task`` (a callable taking no argument).

        Parameters
        ----------
        task : callable
        force : bool, default False
            Queue it even when the backlog is full: for a task that takes the
            place of the one running (a tuning job's next training job).

        Raises
        ------
        ApiError
            ``ResourceLimitExceeded`` when the backlog is full.
        """
        with self._ready:
            if not force:
                self.room()
            self._waiting.append(task)
            self._ready.notify()

    def close(self):
        """Drop the waiting tasks and let the threads end after their current one."""
        with self._ready:
            self._closed = True
            self._waiting.clear()
            self._ready.notify_all()

    def _work(self):
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
                task = self._waiting.popleft()
            try:
                task()
            except Exception:  # a task reports its own failures; this keeps the thread alive
                logger.exception("a job task failed")


def _start_training_process(count):
    """Initialise a training process: ``count`` threads for its kernels, a lower priority, and an end with the server.

    A server stopped by a signal runs no clean-up, and the pool's queues
    never tell its processes: a thread waits for the parent's end and exits.
    """
    import numba

    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))
    if hasattr(os, "nice"):
        os.nice(_NICENESS)  # background work: the server's threads get the cores first
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent):
    parent.join()
    os._exit(1)


class TrainingProcesses:
    """Train in child processes: :func:`rcforest.aws.jobs.train_layout` away from the server's threads.

    The processes start with the first job (``spawn``: nothing of the
    server's threads is copied), stay for the next ones and end with the
    server, however it ends. A process that dies (killed, out of memory)
    fails its job and is replaced.

    Parameters
    ----------
    processes : int, default 1
    threads : int, optional
        Threads of each process's parallel kernels; all cores but one by
        default (at least one), so the endpoints keep a core.
    """

    def __init__(self, processes=1, threads=None):
        self.processes = processes
        self.threads = threads or max(1, (os.cpu_count() or 1) - 1)
        self._context = multiprocessing.get_context("spawn")
        self._guard = threading.Lock()
        self._pool = None

    def _executor(self):
        with self._guard:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.processes,
                    mp_context=self._context,
                    initializer=_start_training_process,
                    initargs=(self.threads,),
                )
            return self._pool

    def __call__(self, work_dir):
        """Train in ``work_dir`` in a child process; answer as :func:`~rcforest.aws.jobs.train_layout`.

        Raises
        ------
        rcforest.aws.jobs.JobFailed
            If the process ended before answering.
        """
        from rcforest.aws.jobs import JobFailed, train_layout

        pool = self._executor()
        try:
            return pool.submit(train_layout, work_dir).result()
        except concurrent.futures.process.BrokenProcessPool:
            with self._guard:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise JobFailed("InternalServerError: the training process ended before the job did") from None

    def close(self):
        """End the processes once their current job is done."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
