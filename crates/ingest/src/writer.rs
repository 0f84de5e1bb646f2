//! The writers: deliveries from every submitter are committed by a few threads in batches, one
//! transaction per batch (group commit). Each answer still waits for its own delivery's commit,
//! so an acknowledgement never leaves before the event is durable; under load one fsync serves
//! many deliveries.

use std::thread::JoinHandle;

use log::error;
use tokio::sync::{mpsc, oneshot};

use crate::{Delivery, IngestError, Ingested, Pipeline};

type Job = (Delivery, oneshot::Sender<Result<Ingested, IngestError>>);

/// Submits deliveries to the writer threads: each vehicle always to the same one, so that on
/// PostgreSQL two writers never wait on each other's vehicle locks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Submitter {
    senders: Vec<mpsc::Sender<Job>>,
    intake: crate::Intake,
}

/// The writer threads; they end once every [`Submitter`] is dropped and their queues are empty.
#[derive(Debug)]
pub(crate) struct Writers {
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts `threads` writers, each with a queue of `queue` deliveries, committing at most
    /// `max_batch` at once.
    pub(crate) fn start(
        pipeline: &Pipeline,
        threads: usize,
        queue: usize,
        max_batch: usize,
    ) -> std::io::Result<(Writers, Submitter)> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (sender, receiver) = mpsc::channel::<Job>(queue.max(1));
            senders.push(sender);
            let pipeline = pipeline.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("meterhook-writer-{i}"))
                    .spawn(move || run(&pipeline, receiver, max_batch.max(1)))?,
            );
        }
        Ok((
            Writers { threads: handles },
            Submitter {
                senders,
                intake: *pipeline.intake(),
            },
        ))
    }

    /// Waits for the writers to finish what was queued.
    pub(crate) fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                error!("a writer thread panicked");
            }
        }
    }
}

fn run(pipeline: &Pipeline, mut queue: mpsc::Receiver<Job>, max_batch: usize) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (deliveries, replies): (Vec<Delivery>, Vec<_>) = batch.into_iter().unzip();
        // A bug in processing must not take the writer down with it: the batch is refused (not
        // acknowledged, so Smartcar delivers again) and the writer goes on.
        let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pipeline.commit(&deliveries)
        }))
        .unwrap_or_else(|_| {
            error!(
                "a writer panicked on a batch of {} deliveries; they are refused",
                deliveries.len()
            );
            deliveries
                .iter()
                .map(|_| {
                    Err(IngestError::Failed(
                        "the writer failed on this batch".into(),
                    ))
                })
                .collect()
        });
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The submitter may have gone; the delivery is committed all the same.
            let _ = reply.send(answer);
        }
    }
}

impl Submitter {
    /// Queues a delivery and waits for its commit. A full queue is refused at once with
    /// [`IngestError::Overloaded`]: the sender is to retry later.
    pub async fn submit(&self, delivery: Delivery) -> Result<Ingested, IngestError> {
        let (reply, answer) = oneshot::channel();
        let writer = match delivery.smartcar_vehicle_id.as_deref() {
            Some(vehicle) if self.senders.len() > 1 => {
                let mut hasher = std::hash::DefaultHasher::new();
                std::hash::Hash::hash(vehicle, &mut hasher);
                (std::hash::Hasher::finish(&hasher) % self.senders.len() as u64) as usize
            }
            _ => 0,
        };
        self.senders[writer]
            .try_send((delivery, reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => IngestError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => IngestError::Unavailable,
            })?;
        answer
            .await
            .map_err(|_| IngestError::Failed("the writer stopped".into()))?
    }

    /// How deliveries are to be classified before they are submitted
    /// ([`crate::classify::received`]).
    pub fn intake(&self) -> &crate::Intake {
        &self.intake
    }

    /// Deliveries waiting in the queues now.
    pub fn queued(&self) -> usize {
        self.senders
            .iter()
            .map(|s| s.max_capacity() - s.capacity())
            .sum()
    }
}
