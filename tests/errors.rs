//! Bad input returns a typed error that names the shapes or the limit; it
//! never panics.

mod common;
use common::*;
use darkmatter::kernels::{BinaryOp, elementwise as ew, matmul, reduce, transpose};
use darkmatter::{Error, Gpu, GpuOptions, Tape, Tensor};

#[test]
fn mismatched_shapes_name_both_shapes() {
    let a = upload(&[1.0; 6], &[2, 3]);
    let b = upload(&[1.0; 8], &[2, 4]);
    let e = ew::binary(&a, &b, BinaryOp::Add).unwrap_err();
    assert!(matches!(e, Error::Shape { op: "add", .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("[2, 3]") && msg.contains("[2, 4]"), "{msg}");

    let e = matmul::matmul(&a, &a, false, false).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("inner dimensions") && msg.contains("[2, 3]"),
        "{msg}"
    );
    // The same operands fit once one is transposed.
    assert_eq!(
        matmul::matmul(&a, &a, false, true).unwrap().shape(),
        &[2, 2]
    );

    let v = upload(&[1.0; 3], &[3]);
    assert!(matches!(
        matmul::matmul(&v, &a, false, false),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(transpose::transpose(&v), Err(Error::Shape { .. })));
    assert!(matches!(reduce::sum_axis(&a, 2), Err(Error::Shape { .. })));
    assert!(matches!(a.reshape(&[4, 2]), Err(Error::Shape { .. })));
    assert!(matches!(ew::expand(&a, &[3, 3]), Err(Error::Shape { .. })));
}

#[test]
fn uploads_must_match_their_shape_and_rank() {
    let e = Tensor::from_slice(gpu(), &[1.0; 5], &[2, 3]).unwrap_err();
    assert!(e.to_string().contains("6 elements but 5"), "{e}");
    let e = Tensor::zeros(gpu(), &[1, 1, 1, 1, 1]).unwrap_err();
    assert!(e.to_string().contains("rank 5"), "{e}");
    let e = Tensor::zeros(gpu(), &[usize::MAX, 4]).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
}

#[test]
fn buffers_over_the_binding_limit_are_refused_before_allocating() {
    // A device of its own: the shared one's pool counts the allocations of
    // the tests running beside this one.
    let own = Gpu::new().unwrap();
    let limit = own.limits().max_storage_buffer_binding_size;
    let elems = (limit / 4 + 1) as usize;
    let before = own.pool_stats().allocations;
    let e = Tensor::zeros(&own, &[elems]).unwrap_err();
    match &e {
        Error::Limit {
            limit: name,
            requested,
            allowed,
            ..
        } => {
            assert_eq!(*name, "max_storage_buffer_binding_size");
            assert_eq!(*allowed, limit);
            assert_eq!(*requested, elems as u64 * 4);
        }
        other => panic!("expected a limit error, got {other}"),
    }
    assert!(
        e.to_string().contains("max_storage_buffer_binding_size"),
        "{e}"
    );
    assert_eq!(
        own.pool_stats().allocations,
        before,
        "nothing was allocated"
    );
}

#[test]
fn buffers_over_max_buffer_size_name_that_limit() {
    let max = gpu().limits().max_buffer_size;
    let elems = (max / 4 + 1) as usize;
    let e = Tensor::zeros(gpu(), &[elems]).unwrap_err();
    assert!(e.to_string().contains("max_buffer_size"), "{e}");
}

#[test]
fn a_smaller_binding_limit_can_be_requested_and_is_enforced() {
    let small = Gpu::with_options(GpuOptions {
        max_storage_binding: Some(1 << 20),
        ..GpuOptions::default()
    })
    .unwrap();
    assert_eq!(small.limits().max_storage_buffer_binding_size, 1 << 20);
    assert!(Tensor::zeros(&small, &[1 << 18]).is_ok());
    let e = Tensor::zeros(&small, &[(1 << 18) + 1]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                allowed: 1048576,
                ..
            }
        ),
        "{e}"
    );
    // A matmul whose output would not fit fails the same way.
    let a = Tensor::zeros(&small, &[1024, 1]).unwrap();
    let e = matmul::matmul(&a, &a, false, true).unwrap_err();
    assert!(matches!(e, Error::Limit { .. }), "{e}");
}

#[test]
fn reading_a_released_value_is_an_error() {
    let mut tape = Tape::new(gpu());
    let x = tape.param(&upload(&[1.0, 2.0, 3.0], &[3])).unwrap();
    let y = tape.square(x).unwrap();
    let loss = tape.sum_all(y).unwrap();
    tape.backward(loss).unwrap();
    // The intermediate went back to the pool during backward.
    let e = tape.value(y).unwrap_err();
    assert!(matches!(e, Error::Released(_)), "{e}");
    assert!(e.to_string().contains("released"), "{e}");
    // Its shape is still known; the parameter and the loss are kept.
    assert_eq!(tape.shape(y).unwrap(), &[3]);
    assert_eq!(
        tape.value(x).unwrap().to_vec().unwrap(),
        vec![1.0, 2.0, 3.0]
    );
    assert_eq!(tape.value(loss).unwrap().item().unwrap(), 14.0);
}

#[test]
fn backward_needs_a_scalar_and_vars_of_its_own_tape() {
    let mut tape = Tape::new(gpu());
    let x = tape.param(&upload(&[1.0, 2.0], &[2])).unwrap();
    let e = tape.backward(x).unwrap_err();
    assert!(e.to_string().contains("exactly one element"), "{e}");

    let mut other = Tape::new(gpu());
    let z = other.param(&upload(&[1.0], &[1])).unwrap();
    assert!(matches!(tape.square(z), Err(Error::Invalid { .. })));
}

#[test]
fn tensors_of_two_devices_do_not_mix() {
    let second = Gpu::new().unwrap();
    let a = upload(&[1.0; 4], &[2, 2]);
    let b = Tensor::from_slice(&second, &[1.0; 4], &[2, 2]).unwrap();
    assert!(matches!(
        ew::binary(&a, &b, BinaryOp::Add),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        matmul::matmul(&a, &b, false, false),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn unknown_backends_and_adapters_are_reported() {
    let e = Gpu::with_options(GpuOptions {
        backend: Some("glide".into()),
        ..GpuOptions::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("glide"), "{e}");
    let e = Gpu::with_options(GpuOptions {
        adapter: Some("no such adapter 3dfx".into()),
        ..GpuOptions::default()
    })
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::NoAdapter(_)) && msg.contains("adapters present"),
        "{msg}"
    );
}
