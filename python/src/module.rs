//! The extension module's entry point, registered without PyO3's proc
//! macros (see Cargo.toml for why): a single-phase `PyInit__npuopt` that
//! creates the module and adds each function as a closure taking its
//! arguments positionally — the Python wrapper (`npuopt/__init__.py`)
//! always passes all of them.

use std::ffi::CStr;
use std::ptr::{addr_of_mut, null_mut};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyModule, PyTuple};

static mut MODULE_DEF: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"npuopt._npuopt".as_ptr(),
    m_doc: c"The Rust side of the npuopt package; use `npuopt`, not this.".as_ptr(),
    // No per-module state; the module cannot be re-initialised.
    m_size: -1,
    m_methods: null_mut(),
    m_slots: null_mut(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// Called by the interpreter on `import npuopt._npuopt`.
///
/// # Safety
///
/// Called by CPython's import machinery, with the GIL held, once.
#[no_mangle]
pub unsafe extern "C" fn PyInit__npuopt() -> *mut ffi::PyObject {
    // SAFETY: the GIL is held; MODULE_DEF lives for the whole process and
    // only CPython touches it (through this pointer), as its API requires.
    let module = unsafe { ffi::PyModule_Create(addr_of_mut!(MODULE_DEF)) };
    if module.is_null() {
        return module;
    }
    Python::attach(|py| {
        // SAFETY: a new, owned reference to a module object.
        let module = unsafe { Bound::from_owned_ptr(py, module).cast_into_unchecked::<PyModule>() };
        match crate::register(&module) {
            Ok(()) => module.into_ptr(),
            Err(e) => {
                e.restore(py);
                null_mut()
            }
        }
    })
}

/// Adds the function `name` to `module`: `f` gets the positional
/// arguments.
pub fn add<F>(
    module: &Bound<'_, PyModule>,
    name: &'static CStr,
    doc: &'static CStr,
    f: F,
) -> PyResult<()>
where
    F: Fn(&Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> + Send + Sync + 'static,
{
    let function = PyCFunction::new_closure(
        module.py(),
        Some(name),
        Some(doc),
        move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| f(args),
    )?;
    module.add(name.to_str().expect("an ASCII name"), function)
}
