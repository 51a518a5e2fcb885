//! wasmtime host for rotators.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "rotator",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}
