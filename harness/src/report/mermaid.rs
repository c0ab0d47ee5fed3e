//! A Mermaid flowchart of the traffic an ATTRIBUTION check observed.
//!
//! One subgraph per cluster holding its senders and its aggregator; one edge per
//! flow labelled with its sample count; cross-cluster edges red, lost flows dashed to a
//! `lost` node. Shared by the Markdown and HTML reports.

use std::fmt::Write as _;

use crate::provider::Flow;

/// Node ID of the sink for lost samples.
pub const LOST_NODE: &str = "lost";

/// linkStyle for an edge that crossed clusters (misattribution).
const CROSS_CLUSTER_STYLE: &str = "stroke:red,stroke-width:3px,color:red";
/// linkStyle for an edge whose samples landed nowhere.
const LOST_STYLE: &str = "stroke:grey,stroke-dasharray:5 5";

/// Renders the flows as Mermaid `flowchart LR` source (without a code fence).
///
/// Flows with the same sender and destination are merged (their samples added), so
/// the picture has one edge per path.
pub fn traffic_flowchart(flows: &[Flow]) -> String {
    let flows = merged(flows);
    let mut clusters: Vec<&str> = Vec::new();
    for flow in &flows {
        for cluster in std::iter::once(flow.from_cluster.as_str()).chain(flow.to_cluster.as_deref())
        {
            if !clusters.contains(&cluster) {
                clusters.push(cluster);
            }
        }
    }
    let mut senders: Vec<(&str, &str)> = Vec::new();
    for flow in &flows {
        let key = (flow.from_cluster.as_str(), flow.sender.as_str());
        if !senders.contains(&key) {
            senders.push(key);
        }
    }
    let cluster_id = |name: &str| clusters.iter().position(|c| *c == name).unwrap_or(0);
    let sender_id = |cluster: &str, sender: &str| {
        let index = senders
            .iter()
            .position(|s| *s == (cluster, sender))
            .unwrap_or(0);
        format!("s{index}")
    };

    let mut out = String::from("flowchart LR\n");
    for (index, cluster) in clusters.iter().enumerate() {
        let _ = writeln!(out, "  subgraph c{index}[\"cluster {}\"]", label(cluster));
        for (sender_cluster, sender) in senders.iter().filter(|(c, _)| c == cluster) {
            let _ = writeln!(
                out,
                "    {}[\"{}\"]",
                sender_id(sender_cluster, sender),
                label(sender)
            );
        }
        let _ = writeln!(out, "    agg{index}[(\"aggregator\")]");
        let _ = writeln!(out, "  end");
    }
    if flows.iter().any(|f| f.to_cluster.is_none()) {
        let _ = writeln!(out, "  {LOST_NODE}([\"lost\"])");
        let _ = writeln!(out, "  style {LOST_NODE} stroke-dasharray:5 5");
    }

    let mut styles = Vec::new();
    for (edge, flow) in flows.iter().enumerate() {
        let from = sender_id(&flow.from_cluster, &flow.sender);
        let count = match flow.samples {
            1 => "1 sample".to_string(),
            n => format!("{n} samples"),
        };
        match &flow.to_cluster {
            Some(to) => {
                let _ = writeln!(out, "  {from} -->|\"{count}\"| agg{}", cluster_id(to));
                if *to != flow.from_cluster {
                    styles.push(format!("  linkStyle {edge} {CROSS_CLUSTER_STYLE}"));
                }
            }
            None => {
                let _ = writeln!(out, "  {from} -.->|\"{count}\"| {LOST_NODE}");
                styles.push(format!("  linkStyle {edge} {LOST_STYLE}"));
            }
        }
    }
    for style in styles {
        out.push_str(&style);
        out.push('\n');
    }
    out
}

fn merged(flows: &[Flow]) -> Vec<Flow> {
    let mut out: Vec<Flow> = Vec::new();
    for flow in flows {
        match out.iter_mut().find(|f| {
            f.from_cluster == flow.from_cluster
                && f.sender == flow.sender
                && f.to_cluster == flow.to_cluster
        }) {
            Some(existing) => existing.samples += flow.samples,
            None => out.push(flow.clone()),
        }
    }
    out
}

/// Makes text safe inside a quoted Mermaid label, a Markdown code fence and HTML:
/// Mermaid's `#name;` entity codes stand in for every character that could end the
/// label, the fence, or open markup.
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            '|' => out.push_str("#124;"),
            '[' | ']' | '(' | ')' | '{' | '}' => {
                let _ = write!(out, "#{};", c as u32);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::report::{attribution_traffic, fixtures};

    struct Parsed {
        /// node ID -> subgraph ID
        node_cluster: BTreeMap<String, String>,
        /// (from, to) per edge, in order
        edges: Vec<(String, String)>,
        /// edge index -> style
        link_styles: BTreeMap<usize, String>,
    }

    /// A small reader of the subset of Mermaid the renderer writes, independent of it.
    fn parse(source: &str) -> Parsed {
        let mut node_cluster = BTreeMap::new();
        let mut edges = Vec::new();
        let mut link_styles = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in source.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("subgraph ") {
                current = Some(rest.split('[').next().unwrap().to_string());
            } else if line == "end" {
                current = None;
            } else if let Some(rest) = line.strip_prefix("linkStyle ") {
                let (index, style) = rest.split_once(' ').unwrap();
                link_styles.insert(index.parse().unwrap(), style.to_string());
            } else if line.contains("-->") || line.contains("-.->") {
                let from = line.split_whitespace().next().unwrap().to_string();
                let to = line.rsplit_once("| ").unwrap().1.to_string();
                edges.push((from, to));
            } else if let Some(cluster) = &current {
                let id: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                node_cluster.insert(id, cluster.clone());
            }
        }
        Parsed {
            node_cluster,
            edges,
            link_styles,
        }
    }

    fn negative_control_flows() -> Vec<Flow> {
        let run = fixtures::run();
        attribution_traffic(&run.scenarios[1]).unwrap().to_vec()
    }

    #[test]
    fn exactly_the_cross_cluster_edges_are_red() {
        let parsed = parse(&traffic_flowchart(&negative_control_flows()));
        let cross: BTreeSet<usize> = parsed
            .edges
            .iter()
            .enumerate()
            .filter(|(_, (from, to))| {
                match (parsed.node_cluster.get(from), parsed.node_cluster.get(to)) {
                    (Some(a), Some(b)) => a != b,
                    _ => false,
                }
            })
            .map(|(i, _)| i)
            .collect();
        let red: BTreeSet<usize> = parsed
            .link_styles
            .iter()
            .filter(|(_, style)| style.contains("stroke:red"))
            .map(|(i, _)| *i)
            .collect();
        // The fixture has two cross-cluster flows: alpha -> beta and beta -> alpha.
        assert_eq!(cross.len(), 2);
        assert_eq!(red, cross);
    }

    #[test]
    fn lost_flows_go_dashed_to_the_lost_node() {
        let source = traffic_flowchart(&negative_control_flows());
        let parsed = parse(&source);
        let lost: Vec<usize> = parsed
            .edges
            .iter()
            .enumerate()
            .filter(|(_, (_, to))| to == LOST_NODE)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lost.len(), 1);
        assert!(parsed.link_styles[&lost[0]].contains("stroke-dasharray"));
        assert!(!parsed.link_styles[&lost[0]].contains("stroke:red"));
        assert!(source.contains(&format!("style {LOST_NODE} stroke-dasharray")));
    }

    #[test]
    fn one_subgraph_per_cluster_with_its_senders_and_aggregator() {
        let parsed = parse(&traffic_flowchart(&negative_control_flows()));
        let clusters: BTreeSet<&String> = parsed.node_cluster.values().collect();
        assert_eq!(clusters.len(), 2);
        // alpha: metrics agent + aggregator; beta: metrics agent, webhook server + aggregator.
        assert_eq!(parsed.node_cluster.len(), 5);
        assert_eq!(parsed.edges.len(), 5);
        for cluster in clusters {
            let aggregators = parsed
                .node_cluster
                .iter()
                .filter(|(id, c)| *c == cluster && id.starts_with("agg"))
                .count();
            assert_eq!(aggregators, 1, "cluster {cluster}");
        }
    }

    #[test]
    fn duplicate_flows_merge_and_labels_are_defused() {
        let flow = |samples| Flow {
            from_cluster: "a\"]; click x".into(),
            sender: "<b>`x`</b>".into(),
            to_cluster: Some("a\"]; click x".into()),
            samples,
        };
        let source = traffic_flowchart(&[flow(2), flow(3)]);
        assert!(source.contains("|\"5 samples\"|"), "{source}");
        assert_eq!(parse(&source).edges.len(), 1);
        // No character that opens markup or closes a Markdown fence, anywhere; `>`
        // appears only in arrows, never in a label.
        assert!(!source.contains('<') && !source.contains('`'), "{source}");
        let sender_line = source
            .lines()
            .find(|l| l.trim_start().starts_with("s0["))
            .unwrap();
        assert!(!sender_line.contains('>'), "{sender_line}");
        assert!(!source.contains("a\"]"), "{source}");
    }
}
