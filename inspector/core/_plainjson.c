/* The proof that a Python value is plain JSON, at C speed: see `scan` and inspector/core/metadata.py.
 *
 * Optional: inspector.core.metadata falls back to its own (slower) proof when this module is absent.
 * Built by inspector/core/_plainjson_build.py when the package is installed.
 *
 * Safety: the walk reads only exact dict/list/str/int/float/bool/None objects and never calls
 * into Python code (no __eq__, __len__, __iter__ of anything), allocates no Python object, and
 * holds the GIL throughout, so nothing can change the value under it. It keeps an explicit stack
 * of at most `max_depth` frames (no recursion), and it stops as soon as a lower bound of the
 * compact encoding reaches `limit`: every node it visits adds at least one byte to that bound,
 * so a value made of shared references costs at most `limit` steps, however much it expands.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MAX_FRAMES 256

typedef struct {
    PyObject *container; /* borrowed: the value holds it */
    Py_ssize_t position;
} Frame;

/* The bytes a container costs before its children: two brackets and the commas between
   children; for an object also two quotes and a colon per member. */
static Py_ssize_t
container_bytes(PyObject *container)
{
    if (PyDict_CheckExact(container)) {
        Py_ssize_t n = PyDict_GET_SIZE(container);
        return 2 + (n > 0 ? n - 1 : 0) + 3 * n;
    }
    Py_ssize_t n = PyList_GET_SIZE(container);
    return 2 + (n > 0 ? n - 1 : 0);
}

/* Minus the lower bound `at_least + cost`, saturated: what `scan` returns once it reaches the limit. */
static PyObject *
too_large(Py_ssize_t at_least, Py_ssize_t cost)
{
    Py_ssize_t bound = cost > PY_SSIZE_T_MAX - at_least ? PY_SSIZE_T_MAX : at_least + cost;
    return PyLong_FromSsize_t(-bound);
}

static Py_ssize_t
string_length(PyObject *string)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(string) < 0) {
        return -1;
    }
#endif
    return PyUnicode_GET_LENGTH(string);
}

PyDoc_STRVAR(scan_doc,
"scan(value, max_depth, limit) -> int\n"
"\n"
"Whether ``value`` is provably plain JSON, walked without running any of its code.\n"
"\n"
"Returns its depth (> 0) when every object in it is an exact dict with exact str keys,\n"
"list, str, int, finite float, bool or None, no deeper than ``max_depth``; 0 when it is\n"
"not (another type, a subclass, a non-str key, NaN or an infinity, too deep, a cycle),\n"
"for the caller to explain; or minus a lower bound of its compact JSON size (shared\n"
"references counted every time they occur) as soon as that bound reaches ``limit``.\n"
"Integers are not range-checked and strings are not checked for lone surrogates: the\n"
"encoder refuses those.");

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan() takes exactly 3 arguments (value, max_depth, limit)");
        return NULL;
    }
    PyObject *root = args[0];
    Py_ssize_t max_depth = PyLong_AsSsize_t(args[1]);
    if (max_depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (max_depth < 1 || max_depth > MAX_FRAMES || limit < 1) {
        PyErr_SetString(PyExc_ValueError, "scan() needs 1 <= max_depth <= 256 and limit >= 1");
        return NULL;
    }
    if (!PyDict_CheckExact(root) && !PyList_CheckExact(root)) {
        return PyLong_FromLong(0);
    }

    Frame stack[MAX_FRAMES];
    Py_ssize_t size = 1; /* frames in use: the depth of the innermost open container */
    Py_ssize_t deepest = 1;
    Py_ssize_t at_least = container_bytes(root);
    stack[0].container = root;
    stack[0].position = 0;
    if (at_least >= limit) {
        return too_large(0, at_least);
    }

    while (size > 0) {
        Frame *top = &stack[size - 1];
        PyObject *child;
        if (PyDict_CheckExact(top->container)) {
            PyObject *key;
            if (!PyDict_Next(top->container, &top->position, &key, &child)) {
                size--;
                continue;
            }
            if (!PyUnicode_CheckExact(key)) {
                return PyLong_FromLong(0);
            }
            Py_ssize_t length = string_length(key);
            if (length < 0) {
                return NULL;
            }
            if (length >= limit - at_least) {
                return too_large(at_least, length);
            }
            at_least += length;
        }
        else {
            if (top->position >= PyList_GET_SIZE(top->container)) {
                size--;
                continue;
            }
            child = PyList_GET_ITEM(top->container, top->position);
            top->position++;
        }

        PyTypeObject *type = Py_TYPE(child);
        Py_ssize_t cost;
        if (type == &PyUnicode_Type) {
            Py_ssize_t length = string_length(child);
            if (length < 0) {
                return NULL;
            }
            if (length >= limit - at_least - 2) {
                return too_large(at_least, length < PY_SSIZE_T_MAX - 2 ? length + 2 : length);
            }
            cost = 2 + length;
        }
        else if (type == &PyLong_Type || child == Py_None || type == &PyBool_Type) {
            cost = 1;
        }
        else if (type == &PyFloat_Type) {
            if (!isfinite(PyFloat_AS_DOUBLE(child))) {
                return PyLong_FromLong(0);
            }
            cost = 1;
        }
        else if (type == &PyDict_Type || type == &PyList_Type) {
            if (size >= max_depth) {
                return PyLong_FromLong(0); /* too deep, or a cycle: the caller says which */
            }
            cost = container_bytes(child);
            stack[size].container = child;
            stack[size].position = 0;
            size++;
            if (size > deepest) {
                deepest = size;
            }
        }
        else {
            return PyLong_FromLong(0);
        }
        if (cost >= limit - at_least) {
            return too_large(at_least, cost);
        }
        at_least += cost;
    }
    return PyLong_FromSsize_t(deepest);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "inspector.core._plainjson",
    .m_doc = "The proof that a value is plain JSON, at C speed (optional; see inspector.core.metadata).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__plainjson(void)
{
    return PyModuleDef_Init(&module);
}
