// Client-overhead bench for the upstream Rust thin client (crate
// katzenpost_thin_client). Not part of the package: bench/overhead_bench.sh
// copies this file into .cache/bench/rs/src/main.rs and builds it there.
//
//   overhead_rs <thinclient.toml> <seconds per case> <concurrency...>
//
// Connects once, waits for the handshake, then for each operation
// (new_keypair, next_message_box_index, and encrypt_write when the daemon is
// connected to a mixnet) and each concurrency C runs C tasks
// that loop for the given time. Prints one JSON line per case.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use katzenpost_thin_client::{Config, ThinClient};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cfg_path = args.get(1).expect("usage: overhead_rs <toml> <secs> <conc...>");
    let secs: f64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5.0);
    let concs: Vec<usize> = if args.len() > 3 {
        args[3..].iter().map(|s| s.parse().unwrap()).collect()
    } else {
        vec![1, 16]
    };

    let t0 = Instant::now();
    let cfg = Config::new(cfg_path).expect("config");
    let client = ThinClient::new(cfg).await.expect("connect");
    // The handshake runs in the worker task. Wait until the geometry from the
    // connection_status_event is stored, then for one new_keypair reply.
    std::panic::set_hook(Box::new(|_| {}));
    loop {
        let c = client.clone();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || c.pigeonhole_geometry())).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::panic::take_hook();
    let first = client.new_keypair(&[7u8; 32]).await.expect("new_keypair");
    eprintln!(
        "rust: connected and first reply after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let index = Arc::new(first.first_message_index.clone());
    let wcap = Arc::new(first.write_cap.clone());
    let payload = Arc::new(vec![1u8; client.pigeonhole_geometry().max_plaintext_payload_length]);
    let mut ops = vec!["new_keypair", "next_message_box_index"];
    if client.is_connected() {
        ops.push("encrypt_write");
    }

    for op in ops {
        for &conc in &concs {
            // warm-up: 50 calls, or 1 s for slow operations (encrypt_write)
            let warm = Instant::now() + Duration::from_secs(1);
            for i in 0..50 {
                if i > 0 && Instant::now() >= warm {
                    break;
                }
                run_op(&client, op, &index, &wcap, &payload).await;
            }
            let count = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let c = client.clone();
                let n = count.clone();
                let idx = index.clone();
                let wc = wcap.clone();
                let pl = payload.clone();
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        run_op(&c, op, &idx, &wc, &pl).await;
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let el = start.elapsed().as_secs_f64();
            let n = count.load(Ordering::Relaxed);
            println!(
                "{{\"client\":\"rust\",\"op\":\"{}\",\"concurrency\":{},\"n\":{},\"seconds\":{:.3},\"ops_per_s\":{:.1},\"mean_latency_us\":{:.1}}}",
                op,
                conc,
                n,
                el,
                n as f64 / el,
                el * 1e6 * conc as f64 / n as f64
            );
        }
    }
    client.stop().await;
}

async fn run_op(
    c: &Arc<ThinClient>,
    op: &str,
    index: &Arc<Vec<u8>>,
    wcap: &Arc<Vec<u8>>,
    payload: &Arc<Vec<u8>>,
) {
    match op {
        "new_keypair" => {
            let seed: [u8; 32] = rand_seed();
            c.new_keypair(&seed).await.expect("new_keypair");
        }
        "encrypt_write" => {
            c.encrypt_write(payload, wcap, index).await.expect("encrypt_write");
        }
        _ => {
            c.next_message_box_index(index).await.expect("next_message_box_index");
        }
    }
}

fn rand_seed() -> [u8; 32] {
    // Cheap per-call seed; the daemon does not care about its quality here.
    use std::sync::atomic::AtomicU64;
    static CTR: AtomicU64 = AtomicU64::new(1);
    let v = CTR.fetch_add(1, Ordering::Relaxed);
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&v.to_le_bytes());
    s
}
