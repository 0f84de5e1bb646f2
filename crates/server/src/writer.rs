//! The writer: verified deliveries from every HTTP worker are committed by a few threads in
//! batches, one transaction per batch (group commit). Each answer still waits for its own
//! delivery's commit, so a 2xx never leaves before the event is durable; under load one fsync
//! serves many deliveries.

use std::thread::JoinHandle;

use log::error;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::state::{Delivery, Ingested, Ingestor};

/// Deliveries committed together at most.
const MAX_BATCH: usize = 256;
/// Deliveries waiting for each writer at most; further senders wait (back-pressure).
const QUEUE: usize = 4_096;

type Job = (Delivery, oneshot::Sender<Result<Ingested, ApiError>>);

/// Submits deliveries to the writer threads: each vehicle always to the same one, so that on
/// PostgreSQL two writers never wait on each other's vehicle locks.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    senders: Vec<mpsc::Sender<Job>>,
}

/// The writer threads; they end once every [`WriterHandle`] is dropped and the queue is empty.
#[derive(Debug)]
pub struct Writer {
    threads: Vec<JoinHandle<()>>,
}

impl Writer {
    /// Starts `threads` writers (1 suits SQLite, whose writes are serial anyway).
    pub fn start(ingestor: Ingestor, threads: usize) -> (Writer, WriterHandle) {
        let mut senders = Vec::new();
        let threads = (0..threads.max(1))
            .map(|i| {
                let (sender, receiver) = mpsc::channel::<Job>(QUEUE);
                senders.push(sender);
                let ingestor = ingestor.clone();
                std::thread::Builder::new()
                    .name(format!("meterhook-writer-{i}"))
                    .spawn(move || run(&ingestor, receiver))
                    .unwrap_or_else(|e| panic!("cannot start a writer thread: {e}"))
            })
            .collect();
        (Writer { threads }, WriterHandle { senders })
    }

    /// Waits for the writers to finish what was queued.
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                error!("a writer thread panicked");
            }
        }
    }
}

fn run(ingestor: &Ingestor, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // In vehicle order: two batches committing at once (two writers, or two instances on one
        // PostgreSQL) then take their vehicle locks in the same order and cannot deadlock.
        batch.sort_by(|(a, _), (b, _)| a.event.vehicle_id.cmp(&b.event.vehicle_id));
        let (deliveries, replies): (Vec<Delivery>, Vec<_>) = batch.into_iter().unzip();
        // A bug in processing must not take the writer down with it: the batch is refused (not
        // acknowledged, so Smartcar delivers again) and the writer goes on.
        let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ingestor.commit(&deliveries)
        }))
        .unwrap_or_else(|_| {
            error!(
                "a writer panicked on a batch of {} deliveries; they are refused",
                deliveries.len()
            );
            deliveries
                .iter()
                .map(|_| Err(ApiError::Internal("the writer failed on this batch".into())))
                .collect()
        });
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The client may have gone; the delivery is committed all the same.
            let _ = reply.send(answer);
        }
    }
}

impl WriterHandle {
    /// Queues a delivery and waits for its commit.
    pub async fn submit(&self, delivery: Delivery) -> Result<Ingested, ApiError> {
        let (reply, answer) = oneshot::channel();
        let writer = match &delivery.event.vehicle_id {
            Some(vehicle) if self.senders.len() > 1 => {
                let mut hasher = std::hash::DefaultHasher::new();
                std::hash::Hash::hash(vehicle, &mut hasher);
                (std::hash::Hasher::finish(&hasher) % self.senders.len() as u64) as usize
            }
            _ => 0,
        };
        self.senders[writer]
            .send((delivery, reply))
            .await
            .map_err(|_| ApiError::Unavailable)?;
        answer
            .await
            .map_err(|_| ApiError::Internal("the writer stopped".into()))?
    }
}
