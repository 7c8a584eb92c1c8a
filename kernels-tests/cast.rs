use crate::common::*;
use std::collections::HashMap;
use unitok::{DType, Graph, HostTensor};

/// f32 data uploaded into f16 storage, cast on the device, read back: equals rounding to f16.
#[test]
fn f16_storage_round_trips_through_cast() {
    let gpu = gpu();
    for n in [1usize, 255, 256, 257, 1001] {
        let mut g = Graph::new();
        let x = g.input("x", &[n], DType::F16);
        let y = g.cast(x, DType::F32).unwrap();
        let h = g.cast(y, DType::F16).unwrap();
        let z = g.cast(h, DType::F32).unwrap();
        g.mark_output(z);
        let data = rand_scaled(&[n], n as u64, 300.0);
        let want = g
            .run_cpu(&HashMap::from([(x, data.clone())]))
            .unwrap()
            .remove(&z)
            .unwrap();
        if !gpu.caps.shader_f16 {
            let err = g
                .compile(&gpu)
                .err()
                .expect("cast without SHADER_F16 must be an error");
            assert!(err.to_string().contains("SHADER_F16"), "{err}");
            continue;
        }
        let mut plan = g.compile(&gpu).unwrap();
        plan.write(x, &data).unwrap();
        plan.run().unwrap();
        assert_close(
            &format!("cast n={n}"),
            &plan.read(z).unwrap(),
            &want,
            0.0,
            0.0,
        );
        // Reading the f16 input back gives the f16-rounded host data as f32.
        let back = plan.read(x).unwrap();
        assert_eq!(
            back,
            HostTensor::f32(&[n], want.as_f32().unwrap().to_vec()).unwrap()
        );
    }
}

#[test]
fn cast_rejects_other_dtypes() {
    let mut g = Graph::new();
    let x = g.input("x", &[4], DType::F32);
    let err = g.cast(x, DType::F32).unwrap_err().to_string();
    assert!(err.contains("f16 <-> f32"), "{err}");
}
