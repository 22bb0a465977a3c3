use super::*;
use std::sync::Mutex;

/// Applies nothing: records the address sets a session hands over.
struct Recorder(Arc<Mutex<Vec<BTreeMap<IpAddr, L2Address>>>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<SetAddresses> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: SetAddresses, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg.addresses);
    }
}

impl Handler<SetBgp> for Recorder {
    type Result = ();
    fn handle(&mut self, _: SetBgp, _: &mut Context<Self>) {}
}

fn lease(seq: u64) -> LinkEvent {
    LinkEvent::Received(
        "m1".into(),
        ToSpeaker::Lease {
            seq,
            lease_ms: 1000,
            heartbeat_ms: 200,
            term: 1,
            leader: 1,
        },
    )
}

/// The next heartbeat the session sends.
async fn heartbeat(out: &mut mpsc::Receiver<ToController>) -> Heartbeat {
    match out.recv().await {
        Some(ToController::Heartbeat(hb)) => hb,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

#[actix_rt::test]
async fn the_probes_see_one_round_trip_per_lease_and_every_assignment_applied_elsewhere() {
    let applied = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder(applied.clone()).start();
    let (out_tx, mut out_rx) = mpsc::channel(64);
    let (services, _services_rx) = watch::channel(Vec::new());
    let (rtt_tx, mut rtt_rx) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = SessionConfig {
        node: NodeName::new("n1").unwrap(),
        labels: Labels::default(),
        interfaces: vec![],
        controllers: vec!["m1".into()],
        on_loss: OnControlPlaneLoss::Fence,
    };
    let applier = Applier {
        addresses: recorder.clone().recipient(),
        bgp: recorder.recipient(),
    };
    let probe: AssignmentProbe = {
        let seen = seen.clone();
        Box::new(move |a: &Assignment| seen.lock().unwrap().push(a.id))
    };
    let session = ControllerSession::new(
        cfg,
        applier,
        Arc::new(LeaseGate::default()),
        Arc::new(SpeakerMetrics::new()),
        out_tx,
        services,
    )
    .with_rtt_probe(rtt_tx)
    .with_assignment_probe(probe)
    .start();

    session.do_send(LinkEvent::Connected("m1".into()));
    let first = heartbeat(&mut out_rx).await.seq;
    session.send(lease(first)).await.unwrap();
    let rtt = rtt_rx.recv().await.unwrap();
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    // A lease for a heartbeat never sent is not taken, and no round trip is reported.
    session.send(lease(first + 1000)).await.unwrap();
    assert!(rtt_rx.try_recv().is_err(), "one round trip per lease taken");

    let id = AssignmentId {
        term: 1,
        leader: 1,
        revision: 1,
    };
    let address: IpAddr = "192.0.2.1".parse().unwrap();
    let assignment = Assignment {
        id,
        base: None,
        upsert: vec![L2Address {
            address,
            services: vec![],
            interfaces: vec![],
        }],
        remove: vec![],
        services: Some(vec![]),
        services_upsert: vec![],
        services_remove: vec![],
        peers: None,
        routes_upsert: vec![],
        routes_remove: vec![],
    };
    session
        .send(LinkEvent::Received(
            "m1".into(),
            ToSpeaker::Assignment(Box::new(assignment)),
        ))
        .await
        .unwrap();
    // The acknowledgement follows the applier's answer.
    while heartbeat(&mut out_rx).await.applied != Some(id) {}
    assert_eq!(*seen.lock().unwrap(), vec![id]);
    let last = applied.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.keys().copied().collect::<Vec<_>>(), vec![address]);
}
