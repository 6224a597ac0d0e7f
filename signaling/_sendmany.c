/* One frame to many sockets in one call: the fan-out's write without Python per recipient.

   `send_many(transports, fds, data, skip=None)` writes the bytes `data` to the socket `fds[i]` of
   each asyncio transport `transports[i]` without blocking, and returns `(written, short)`: how
   many took all of it, and for the others a list of (index, result), result the bytes written
   (0 < result < len(data)) or a negative errno. -EAGAIN means "write it through the transport":
   the socket's buffer was full, or the transport already held buffered bytes (a direct write
   would overtake them), so it was not written to. A transport that is closing is left out (its
   descriptor may be closed already, its number reused). `skip`, when given, has one byte per
   socket: non-zero leaves that one out.

   On Linux with io_uring the sends are queued as one IORING_OP_SEND each and submitted a ring's
   worth at a time (one system call for up to 4,096 sends); `MSG_DONTWAIT` makes a full socket
   answer -EAGAIN instead of being waited for, so the call never blocks. Without io_uring (an old
   kernel, a seccomp filter) it is a loop of send(2). The transports are asked first, with the
   GIL; the GIL is released for the sends.

   The ring belongs to the process that set it up: a forked worker sets up its own at its first
   call (a ring shared by two processes would mix their submissions). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__linux__) && __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <sys/mman.h>
#define HAVE_URING 1
#else
#define HAVE_URING 0
#endif

#define FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL)

enum { MODE_SEND = 0, MODE_URING = 1 };
static int want_mode = MODE_URING; /* what set_mode asked for */

#if HAVE_URING
#define RING_ENTRIES 4096
static pid_t ring_pid = 0; /* the process that owns the ring; 0: none */
static int ring_fd = -1;
static int ring_failed = 0; /* setup failed in this process: use send(2) */
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;
static unsigned entries;
static void *sq_map, *cq_map;
/* One call at a time on the ring: another thread's call (two event loops in one process) takes
   the send(2) loop instead of waiting. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t sq_len, cq_len, sqe_len;

static void ring_drop(void) {
    /* After a fork the child holds the parent's mappings and descriptor: let go of them. */
    if (sq_map) munmap(sq_map, sq_len);
    if (cq_map) munmap(cq_map, cq_len);
    if (sqes) munmap(sqes, sqe_len);
    if (ring_fd >= 0) close(ring_fd);
    sq_map = cq_map = NULL;
    sqes = NULL;
    ring_fd = -1;
    ring_pid = 0;
}

static int ring_setup(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* SUBMIT_ALL: a send that fails does not stop the ones after it from being submitted. */
    p.flags = IORING_SETUP_SUBMIT_ALL;
    int fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0) {
        memset(&p, 0, sizeof p);
        fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
        if (fd < 0) return -1;
    }
    ring_fd = fd;
    entries = p.sq_entries;
    sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    sqe_len = p.sq_entries * sizeof(struct io_uring_sqe);
    int prot = PROT_READ | PROT_WRITE, flags = MAP_SHARED | MAP_POPULATE;
    char *sq = mmap(0, sq_len, prot, flags, fd, IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_len, prot, flags, fd, IORING_OFF_CQ_RING);
    void *s = mmap(0, sqe_len, prot, flags, fd, IORING_OFF_SQES);
    sq_map = sq == MAP_FAILED ? NULL : sq;
    cq_map = cq == MAP_FAILED ? NULL : cq;
    sqes = s == MAP_FAILED ? NULL : s;
    if (!sq_map || !cq_map || !sqes) {
        ring_drop();
        return -1;
    }
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    cq_head = (unsigned *)(cq + p.cq_off.head);
    cq_tail = (unsigned *)(cq + p.cq_off.tail);
    cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    ring_pid = getpid();
    return 0;
}

/* The ring of this process, set up at first use; 0 when there is none (use send(2)). */
static int ring_ready(void) {
    pid_t pid = getpid();
    if (ring_pid == pid) return 1;
    if (ring_pid != 0) { /* inherited through fork */
        ring_drop();
        ring_failed = 0;
    }
    if (ring_failed) return 0;
    if (ring_setup() < 0) {
        ring_failed = 1;
        return 0;
    }
    return 1;
}

/* Sends through the ring; res[i] gets each result. Returns -1 (errno set) if the ring failed:
   the sends not completed are then left as 1 in `todo` for the caller to do with send(2). */
static int uring_send(const int *fds, Py_ssize_t n, const unsigned char *skip, const char *buf,
                      size_t len, long *res, unsigned char *todo) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned tail = atomic_load_explicit((_Atomic unsigned *)sq_tail, memory_order_acquire);
        unsigned k = 0;
        for (; i < n && k < entries; i++) {
            if (skip && skip[i]) continue;
            unsigned idx = (tail + k) & *sq_mask;
            struct io_uring_sqe *e = &sqes[idx];
            memset(e, 0, sizeof *e);
            e->opcode = IORING_OP_SEND;
            e->fd = fds[i];
            e->addr = (unsigned long)buf;
            e->len = (unsigned)len;
            e->msg_flags = FLAGS; /* MSG_DONTWAIT: -EAGAIN now, never a wait for space */
            e->user_data = (unsigned long long)i;
            sq_array[idx] = idx;
            todo[i] = 1;
            k++;
        }
        if (k == 0) break;
        atomic_store_explicit((_Atomic unsigned *)sq_tail, tail + k, memory_order_release);
        unsigned submitted = 0, got = 0;
        while (got < k) {
            unsigned to_submit = k - submitted;
            int r = (int)syscall(__NR_io_uring_enter, ring_fd, to_submit, k - got, IORING_ENTER_GETEVENTS,
                                 NULL, 0);
            if (r < 0) {
                /* EINTR, EAGAIN, EBUSY: nothing was submitted; reap and go on. Anything else
                   fails the call before any submission (a bad ring), and send(2) takes over. */
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EBUSY) r = 0; /* reap, then try again */
                else return -1;
            }
            submitted += (unsigned)r;
            unsigned head = atomic_load_explicit((_Atomic unsigned *)cq_head, memory_order_relaxed);
            unsigned ctail = atomic_load_explicit((_Atomic unsigned *)cq_tail, memory_order_acquire);
            unsigned before = got;
            for (; head != ctail; head++, got++) {
                struct io_uring_cqe *c = &cqes[head & *cq_mask];
                Py_ssize_t j = (Py_ssize_t)c->user_data;
                res[j] = c->res;
                todo[j] = 0;
            }
            atomic_store_explicit((_Atomic unsigned *)cq_head, head, memory_order_release);
            if (r == 0 && got == before && got < k) {
                /* Nothing went in and nothing came out: give up on the ring for this call. */
                errno = EIO;
                return -1;
            }
        }
    }
    return 0;
}
#endif

static PyObject *str_is_closing, *str_get_write_buffer_size;

/* What the transport allows: 0 send directly, 1 closing (leave it), 2 bytes buffered (write
   through the transport, after them); -1 with an exception set. */
static int transport_state(PyObject *t) {
    PyObject *r = PyObject_CallMethodNoArgs(t, str_is_closing);
    if (!r) return -1;
    int closing = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (closing) return closing < 0 ? -1 : 1;
    r = PyObject_CallMethodNoArgs(t, str_get_write_buffer_size);
    if (!r) return -1;
    Py_ssize_t size = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (size < 0 && PyErr_Occurred()) return -1;
    return size > 0 ? 2 : 0;
}

static PyObject *send_many(PyObject *self, PyObject *args) {
    PyObject *transports, *skipobj = Py_None;
    Py_buffer fdbuf, data, skipbuf = {0};
    if (!PyArg_ParseTuple(args, "O!y*y*|O", &PyList_Type, &transports, &fdbuf, &data, &skipobj)) return NULL;
    PyObject *out = NULL, *short_list = NULL;
    long *res = NULL;
    unsigned char *skip = NULL, *todo = NULL;
    Py_ssize_t n = fdbuf.len / (Py_ssize_t)sizeof(int);
    if (fdbuf.len % (Py_ssize_t)sizeof(int) != 0 || PyList_GET_SIZE(transports) != n) {
        PyErr_SetString(PyExc_ValueError, "fds must be a buffer of C ints, one per transport");
        goto done;
    }
    if (skipobj != Py_None) {
        if (PyObject_GetBuffer(skipobj, &skipbuf, PyBUF_SIMPLE) < 0) goto done;
        if (skipbuf.len != n) {
            PyErr_SetString(PyExc_ValueError, "skip must have one byte per descriptor");
            goto done;
        }
    }
    size_t m = (size_t)(n ? n : 1);
    res = PyMem_Malloc(m * sizeof(long));
    skip = PyMem_Calloc(m, 1);
    todo = PyMem_Calloc(m, 1);
    if (!res || !skip || !todo) {
        PyErr_NoMemory();
        goto done;
    }
    /* First, with the GIL: which sockets may be written to directly. A closing transport's
       descriptor may already be closed (and its number reused), so it is never written to;
       one with buffered bytes gets this frame after them, through the transport. */
    const unsigned char *given = skipbuf.obj ? skipbuf.buf : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (given && given[i]) {
            skip[i] = 1;
            continue;
        }
        int state = transport_state(PyList_GET_ITEM(transports, i));
        if (state < 0) goto done;
        skip[i] = state ? 1 : 0;
        res[i] = state == 2 ? -EAGAIN : 0;
        if (state == 2) skip[i] = 2;
    }
    const int *fds = fdbuf.buf;
    const char *buf = data.buf;
    size_t len = (size_t)data.len;
    int used_ring = 0;
    Py_BEGIN_ALLOW_THREADS
#if HAVE_URING
    if (want_mode == MODE_URING && n > 1 && pthread_mutex_trylock(&ring_lock) == 0) {
        if (ring_ready()) {
            used_ring = 1;
            if (uring_send(fds, n, skip, buf, len, res, todo) < 0) {
                ring_drop(); /* a broken ring: this process goes on with send(2) */
                ring_failed = 1;
                used_ring = 0;
            }
        }
        pthread_mutex_unlock(&ring_lock);
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++) {
        if (skip[i] || (used_ring && !todo[i])) continue;
        ssize_t r = send(fds[i], buf, len, FLAGS);
        res[i] = r < 0 ? -(long)errno : (long)r;
    }
    Py_END_ALLOW_THREADS
    short_list = PyList_New(0);
    if (!short_list) goto done;
    Py_ssize_t written = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (skip[i] == 1) continue;
        if (skip[i] == 0 && res[i] == (long)len) {
            written++;
            continue;
        }
        PyObject *t = Py_BuildValue("(nl)", i, res[i]);
        if (!t || PyList_Append(short_list, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
    }
    out = Py_BuildValue("(nO)", written, short_list);
done:
    Py_XDECREF(short_list);
    PyMem_Free(res);
    PyMem_Free(skip);
    PyMem_Free(todo);
    PyBuffer_Release(&fdbuf);
    PyBuffer_Release(&data);
    if (skipbuf.obj) PyBuffer_Release(&skipbuf);
    return out;
}

static PyObject *set_mode(PyObject *self, PyObject *arg) {
    const char *m = PyUnicode_AsUTF8(arg);
    if (!m) return NULL;
    if (strcmp(m, "io_uring") == 0) want_mode = MODE_URING;
    else if (strcmp(m, "send") == 0) want_mode = MODE_SEND;
    else {
        PyErr_SetString(PyExc_ValueError, "mode is 'io_uring' or 'send'");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The way sends go in this process now: 'io_uring' once its ring is up, else 'send'. */
static PyObject *mode(PyObject *self, PyObject *unused) {
#if HAVE_URING
    if (want_mode == MODE_URING) {
        pthread_mutex_lock(&ring_lock);
        int ready = ring_ready();
        pthread_mutex_unlock(&ring_lock);
        if (ready) return PyUnicode_FromString("io_uring");
    }
#endif
    return PyUnicode_FromString("send");
}

static PyMethodDef methods[] = {
    {"send_many", send_many, METH_VARARGS,
     "send_many(transports, fds, data, skip=None) -> (written, [(index, result)]): data to the "
     "socket of every transport that is open and has nothing buffered, without blocking."},
    {"set_mode", set_mode, METH_O, "set_mode('io_uring' | 'send'): how send_many sends."},
    {"mode", mode, METH_NOARGS, "mode() -> 'io_uring' | 'send': how send_many sends now."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sendmany",
                                    "One buffer to many sockets in one call (signaling/sendmany.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__sendmany(void) {
    str_is_closing = PyUnicode_InternFromString("is_closing");
    str_get_write_buffer_size = PyUnicode_InternFromString("get_write_buffer_size");
    if (!str_is_closing || !str_get_write_buffer_size) return NULL;
    return PyModule_Create(&module);
}
