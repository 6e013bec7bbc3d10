//! Who reviews an item, resolved once when an instance starts: the manager, the resource's
//! owners, the people named, or the principal themselves; never someone about their own access
//! (except in `self` mode); the fallback when nobody else is left.

use serde::{Deserialize, Serialize};

use super::definition::ReviewerMode;

/// A reviewer: a person of the tenant, by object id, with how to show and reach them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Person {
    pub object_id: String,
    pub name: String,
    pub email: Option<String>,
}

/// What resolving an item's reviewers has to go on.
#[derive(Debug, Clone, Copy)]
pub struct ReviewerChoice<'a> {
    pub mode: ReviewerMode,
    /// The principal whose access it is (object id).
    pub principal: &'a str,
    /// Their manager, when synced.
    pub manager: Option<&'a Person>,
    /// The resource's owners (people).
    pub owners: &'a [Person],
    /// The named reviewers, groups expanded to their members.
    pub named: &'a [Person],
    /// The principal as a person (for `self` mode; `None` for a service principal).
    pub themselves: Option<&'a Person>,
    pub fallback: &'a [Person],
}

/// No reviewer could be found for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved;

/// The item's reviewers, each once, in a stable order; [`Unresolved`] when even the fallback
/// leaves nobody (the campaign then refuses to start, naming the item).
pub fn choose_reviewers(choice: &ReviewerChoice) -> Result<Vec<Person>, Unresolved> {
    let first: Vec<&Person> = match choice.mode {
        ReviewerMode::Manager => choice.manager.into_iter().collect(),
        ReviewerMode::ResourceOwner => choice.owners.iter().collect(),
        ReviewerMode::Named => choice.named.iter().collect(),
        ReviewerMode::SelfReview => match choice.themselves {
            Some(themselves) => return Ok(vec![themselves.clone()]),
            // An application cannot review itself: the fallback does.
            None => Vec::new(),
        },
    };
    // Nobody decides on their own access.
    let others = |people: Vec<&Person>| -> Vec<Person> {
        let mut seen = std::collections::HashSet::new();
        people
            .into_iter()
            .filter(|p| !p.object_id.eq_ignore_ascii_case(choice.principal))
            .filter(|p| seen.insert(p.object_id.to_lowercase()))
            .cloned()
            .collect()
    };
    let chosen = others(first);
    if !chosen.is_empty() {
        return Ok(chosen);
    }
    let fallback = others(choice.fallback.iter().collect());
    if fallback.is_empty() { Err(Unresolved) } else { Ok(fallback) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> Person {
        Person { object_id: id.into(), name: format!("Person {id}"), email: Some(format!("{id}@contoso.com")) }
    }

    fn choice<'a>(
        mode: ReviewerMode,
        manager: Option<&'a Person>,
        people: &'a [Person],
        fallback: &'a [Person],
    ) -> ReviewerChoice<'a> {
        ReviewerChoice { mode, principal: "ada", manager, owners: people, named: people, themselves: None, fallback }
    }

    #[test]
    fn the_manager_reviews_else_the_fallback_and_never_oneself() {
        let (bob, iam) = (person("bob"), [person("iam")]);
        let names =
            |r: Result<Vec<Person>, Unresolved>| r.unwrap().into_iter().map(|p| p.object_id).collect::<Vec<_>>();
        assert_eq!(names(choose_reviewers(&choice(ReviewerMode::Manager, Some(&bob), &[], &iam))), ["bob"]);
        assert_eq!(names(choose_reviewers(&choice(ReviewerMode::Manager, None, &[], &iam))), ["iam"]);
        // Ada owns the group: she does not review herself; the other owner does.
        let owners = [person("ADA"), person("cy"), person("cy")];
        assert_eq!(names(choose_reviewers(&choice(ReviewerMode::ResourceOwner, None, &owners, &iam))), ["cy"]);
        let only_ada = [person("ada")];
        assert_eq!(names(choose_reviewers(&choice(ReviewerMode::ResourceOwner, None, &only_ada, &iam))), ["iam"]);
        assert_eq!(choose_reviewers(&choice(ReviewerMode::Named, None, &only_ada, &only_ada)), Err(Unresolved));
    }

    #[test]
    fn self_review_is_the_principal_and_the_fallback_for_an_application() {
        let (ada, iam) = (person("ada"), [person("iam")]);
        let mut c = choice(ReviewerMode::SelfReview, None, &[], &[]);
        assert_eq!(choose_reviewers(&c), Err(Unresolved));
        c.fallback = &iam;
        assert_eq!(choose_reviewers(&c).unwrap(), iam.to_vec());
        c.themselves = Some(&ada);
        assert_eq!(choose_reviewers(&c).unwrap(), vec![ada.clone()]);
    }
}
